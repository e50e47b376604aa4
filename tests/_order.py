"""The order pytest-xdist hands tests out in: the longest first.

``--dist loadgroup`` gives each worker the next test (or the next ``xdist_group``, whole) in
collection order whenever it is free. A long test that comes up last runs alone at the end
while the other worker idles; handed out first, the short ones fill in around it. These are
seconds per test (a function's cases on average, a case apart where it differs by half), setup
included, from a run of the whole suite on a 2-core machine (2026-12-05): only their order
matters. Tests not named keep their place, after these. A whole group weighs
the sum of its tests. The order must be the same on every worker (xdist compares the
collections), so it comes from this table, never from timings of the run at hand.
"""

from __future__ import annotations

import pytest

WEIGHTS = {
    "test_bench_asv.py::test_asv_quick_run_passes_offline": 97,
    "test_bench_tools.py::test_targets_measure_each_row_on_each_backend": 54,
    "test_forward_nats.py::test_whole_cluster_restart_mid_run": 51,
    "test_forward_nats.py::test_a_walrus_batch_is_one_atomic_batch_across_sigkills_of_the_forwarder":
        51,
    "test_stateful.py::TestWalModel::runTest": 51,
    "test_docs.py::test_every_block_of_the_page_runs[cli.md]": 41,
    "test_forward_nats.py::test_sigkill_of_a_node_mid_run": 35,
    "test_forward_nats.py::test_sigkill_of_the_forwarder_at_random_points": 28,
    "test_kit.py::test_every_builtin_backend_passes_the_kit": 27,
    "test_kit.py::test_the_pytest11_entry_point_loads_it_beside_p": 25,
    "test_docs_plugin_example.py::test_the_example_passes_the_backend_authors_kit": 24,
    "test_docs_plugin_example.py::test_the_installed_plugin_is_listed": 21,
    "test_bench_tools.py::test_the_plain_python_reference_row_runs_once_without_a_target": 20,
    "test_basic.py::test_entry_of_exactly_max_entry_bytes": 19,
    "test_bench_compare.py::test_every_system_runs_every_workload": 19,
    "test_bench_tools.py::test_scale_reopens_a_clean_directory_without_scanning": 19,
    "test_bench_tools.py::test_backends_table_lists_every_backend": 16,
    "test_power_loss.py::test_power_cut_keeps_every_promise": 15,
    "test_verify.py::test_verify_beside_a_live_writer_finds_no_false_damage": 15,
    "test_suite_run.py::test_a_group_runs_whole_in_one_worker": 15,
    "test_suite_run.py::test_every_step_runs_and_each_failure_is_named": 14,
    "test_retention.py::test_consumers_racing_expiry_get_whole_entries_in_order": 13,
    "test_forward_nats.py::test_forward_once_sends_every_entry_once_and_resumes": 13,
    "test_verify.py::test_verify_beside_a_live_writer_that_rolls_while_it_lists": 13,
    "test_bench_runs.py::test_writes": 12,
    "test_bench_compare.py::test_the_rust_original_runs_in_the_same_run": 12,
    "test_bench_runs.py::test_batch_scaling": 11,
    "test_forward_nats.py::test_the_examples_forward_from_a_thread_and_read_on_the_other_side": 11,
    "test_forward_nats.py::test_sigkill_of_the_forwarder_while_the_writer_consumes_and_reclaims":
        11,
    "test_bad_input.py::test_bad_calls_raise_their_error_and_change_nothing": 11,
    "test_bench_runs.py::test_reads_drain_what_was_written": 11,
    "test_docs_plugin_example.py::test_the_command_line_uses_it_and_others_read_what_it_wrote": 10,
    "test_docs.py::test_every_block_of_the_page_runs[consumers.md]": 10,
    "test_bench_compare.py::test_compare_rates_and_ratios": 10,
    "test_bench_runs.py::test_batch": 10,
    "test_kit.py::test_without_its_option_the_plugin_changes_nothing": 9,
    "test_consumers.py::test_named_reads_beside_reclamation_in_other_threads": 9,
    "test_lifecycle_durability.py::test_a_full_disk_still_drains": 9,
    "test_forward_nats.py::test_bench_forward_runs": 8,
    "test_retention.py::test_power_cut_during_expiry[faults-io_uring-sync_each-worker]": 8,
    "test_recovery.py::test_kill_during_recovery_is_harmless": 8,
    "test_corruption.py::test_random_damage_never_returns_wrong_data": 8,
    "test_docs.py::test_the_site_builds_strictly": 8,
    "test_consumers_power.py::test_power_cut_keeps_named_positions": 6,
    "test_kit.py::test_a_broken_backend_fails_the_kit_saying_what_it_broke": 6,
    "test_retention.py::test_power_cut_during_expiry[faults-pwrite-sync_each-worker]": 6,
    "test_corruption_verify.py::test_verify_lists_every_damaged_entry": 6,
    "test_corruption.py::test_a_flip_inside_one_record_damages_exactly_that_entry": 6,
    "test_original_bugs.py::test_16_3ab_recovery_keeps_data_after_failed_topics_and_big_entries":
        6,
    "test_prefault.py::test_a_slow_writer_gets_no_lead": 6,
    "test_docs_plugin_example.py::test_the_plugin_can_be_disabled": 5,
    "test_basic.py::test_extreme_topic_count_with_sync_each": 5,
    "test_consistency.py::test_at_least_once_never_skips_and_replays_at_most_n_plus_last_call": 5,
    "test_forward_nats.py::test_a_stream_fed_by_another_log_is_refused": 5,
    "test_retention.py::test_power_cut_during_expiry[faults-pwrite-sync_each-writer]": 5,
    "test_cli.py::test_tail_follows_another_process_and_stops_cleanly": 5,
    "test_consumers_process.py::test_writer_and_consumers_killed": 4,
    "test_basic.py::test_massive_single_entry": 4,
    "test_damage_reads.py::test_batches_at_every_boundary_are_whole_after_a_crash[io_uring-ms5]":
        4,
    "test_damage_reads.py::test_batches_at_every_boundary_are_whole_after_a_crash[pwrite-ms5]": 4,
    "test_docs.py::test_every_block_of_the_page_runs": 4,
    "test_forward_nats.py::test_topics_created_later_are_followed": 4,
    "test_forward_nats.py::test_the_forwarders_consumer_keeps_what_the_stream_has_not_acknowledged":
        4,
    "test_forward_nats.py::test_a_stream_recreated_empty_gets_what_the_log_still_holds": 4,
    "test_basic.py::test_entry_too_large_is_rejected_and_changes_nothing": 4,
    "test_prefault_native.py::test_the_interpreter_exits_with_the_thread_mid_chunk": 4,
    "test_config_file.py::test_every_command_takes_config_in_place_of_dir": 4,
    "test_bench_retention.py::test_retention_bench_compares_and_reports_the_bound": 4,
    "test_bench_wakeup.py::test_wakeup_prints_every_measurement": 4,
    "test_io_uring.py::test_probe_reports_missing_cffi": 3,
    "test_bench_plots.py::test_plot": 3,
    "test_config.py::test_keyed_instances_are_isolated_and_recover_independently[io_uring]": 3,
    "test_consumers_process.py::test_registration_never_lands_in_a_reclaimed_segment": 3,
    "test_recovery.py::test_torn_tail_is_cut_and_the_log_goes_on": 3,
    "test_forward_nats.py::test_a_second_forwarder_with_the_same_consumer_is_refused": 3,
    "test_forward_nats.py::test_a_server_with_a_lower_batch_limit_gets_batches_it_takes": 3,
    "test_plugins_e2e.py::test_a_plugin_wraps_a_builtin_and_does_real_io": 3,
    "test_recovery.py::test_zeroed_header_in_an_unclaimed_tail_cuts_the_log": 3,
    "test_retention.py::test_power_cut_during_expiry": 3,
    "test_lifecycle_durability.py::test_ctrl_c_at_random_moments_keeps_the_instance_whole": 3,
    "test_observer_follow.py::test_an_observer_of_a_dead_writers_torn_tail_does_not_rescan_it[io_uring]":
        3,
    "test_observer_follow.py::test_an_observer_of_a_fast_rolling_writer_sees_every_entry_intact":
        3,
    "test_batch.py::test_sequential_batches_survive_reopen_cycles[io_uring]": 3,
    "test_bench_consumers.py::test_consumers_bench_compares_each_workload": 3,
    "test_kit.py::test_an_unknown_backend_is_a_usage_error": 3,
    "test_observer.py::test_observer_process_follows_live_writer_process": 3,
    "test_cli.py::test_options_mirror_the_library": 3,
    "test_batch.py::test_batch_over_byte_limit_changes_nothing": 3,
    "test_cli_consumers.py::test_read_consumer_consumes_beside_a_live_writer": 3,
    "test_config.py::test_every_constructor[pwrite]": 3,
    "test_lifecycle_durability.py::test_a_sync_each_append_whose_fsync_failed_never_comes_back": 3,
    "test_prefault_native.py::test_open_append_close_cycles": 3,
}


def weight(item: pytest.Item) -> int:
    """The table's figure for this test: its own case first, else its function's; 0."""
    name = _plain(item.nodeid).split("/")[-1]
    return WEIGHTS.get(name, WEIGHTS.get(name.split("[")[0], 0))


def group(item: pytest.Item) -> str | None:
    """The test's ``xdist_group``, named as pytest-xdist names it (several marks: joined)."""
    names = {str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
             for mark in item.iter_markers("xdist_group")}
    return "_".join(sorted(names)) if names else None


def _plain(nodeid: str) -> str:
    """``nodeid`` without the ``@group`` pytest-xdist appends (its own rule for telling one)."""
    return nodeid.rsplit("@", 1)[0] if nodeid.rfind("@") > nodeid.rfind("]") else nodeid


def keep_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give each grouped test the ``@group`` suffix ``--dist loadgroup`` schedules by.

    pytest-xdist's worker appends it by assigning ``item._nodeid``; pytest 9.2 keeps the node
    id elsewhere (a structured ``item._id``), so the assignment is lost and every group is
    spread over all workers: the source-tree tests then build in one tree at once, the 1 GiB
    entries are written side by side, and each worker starts its own NATS cluster
    (pytest-dev/pytest-xdist#1386). Here the suffix is set where this pytest keeps the id;
    where pytest-xdist already set it, nothing changes.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        name = group(item)
        if name is None or item.nodeid.endswith(f"@{name}"):
            continue
        nodeid = f"{item.nodeid}@{name}"
        structured = getattr(item, "_id", None)
        if structured is not None and hasattr(type(structured), "parse"):
            item._id = type(structured).parse(nodeid)  # type: ignore[attr-defined]
        else:
            item._nodeid = nodeid  # type: ignore[attr-defined]
        assert item.nodeid == nodeid, f"could not name the group of {item.nodeid}"


def longest_first(items: list[pytest.Item]) -> None:
    """Sort ``items`` in place: heaviest first (a group by its total), ties in place."""
    totals: dict[str, int] = {}
    for item in items:
        if (name := group(item)) is not None:
            totals[name] = totals.get(name, 0) + weight(item)
    items.sort(key=lambda item: -(totals[name] if (name := group(item)) is not None
                                  else weight(item)))
