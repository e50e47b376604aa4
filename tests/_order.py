"""The order pytest-xdist hands tests out in: the longest first.

``--dist loadgroup`` gives each worker the next test (or the next ``xdist_group``, whole) in
collection order whenever it is free. A long test that comes up last runs alone at the end
while the other worker idles; handed out first, the short ones fill in around it. These are
seconds per test (or per parametrised case) from a ``--durations`` run on a busy 2-core machine:
only their order matters. Tests not named keep their place, after these. A whole group weighs
the sum of its tests. The order must be the same on every worker (xdist compares the
collections), so it comes from this table, never from timings of the run at hand.
"""

from __future__ import annotations

import pytest

WEIGHTS = {
    "test_bench_asv.py::test_asv_quick_run_passes_offline": 72,
    "test_stateful.py::TestWalModel::runTest": 34,
    "test_forward_nats.py::test_whole_cluster_restart_mid_run": 31,
    "test_docs.py::test_every_block_of_the_page_runs[cli.md]": 28,
    "test_docs_plugin_example.py::test_the_example_passes_the_backend_authors_kit": 18,
    "test_basic.py::test_entry_of_exactly_max_entry_bytes": 15,
    "test_lifecycle_durability.py::test_a_full_disk_still_drains": 14,
    "test_bench_tools.py::test_targets_measure_each_row_on_each_backend": 14,
    "test_verify.py::test_verify_beside_a_live_writer_that_rolls_while_it_lists": 12,
    "test_bench_compare.py::test_every_system_runs_every_workload": 12,
    "test_forward_nats.py::test_sigkill_of_a_node_mid_run": 11,
    "test_consumers.py::test_named_reads_beside_reclamation_in_other_threads": 11,
    "test_docs_plugin_example.py::test_the_command_line_uses_it_and_others_read_what_it_wrote":
        11,
    "test_kit.py::test_every_builtin_backend_passes_the_kit": 10,
    "test_prefault.py::test_a_slow_writer_gets_no_lead": 10,
    "test_docs_plugin_example.py::test_the_installed_plugin_is_listed": 10,
    "test_corruption_verify.py::test_verify_lists_every_damaged_entry": 10,
    "test_bench_tools.py::test_scale_reopens_a_clean_directory_without_scanning": 10,
    "test_forward_nats.py::test_the_examples_forward_from_a_thread_and_read_on_the_other_side": 8,
    "test_forward_nats.py::test_sigkill_of_the_forwarder_while_the_writer_consumes_and_reclaims":
        8,
    "test_verify.py::test_verify_beside_a_live_writer_finds_no_false_damage": 8,
    "test_bench_runs.py::test_writes": 8,
    "test_docs.py::test_every_block_of_the_page_runs[consumers.md]": 8,
    "test_power_loss.py::test_power_cut_keeps_every_promise": 7,
    "test_bad_input.py::test_bad_calls_raise_their_error_and_change_nothing": 6,
    "test_bench_tools.py::test_the_plain_python_reference_row_runs_once_without_a_target": 6,
    "test_forward_nats.py::test_sigkill_of_the_forwarder_at_random_points": 6,
    "test_bench_compare.py::test_compare_rates_and_ratios": 6,
    "test_consumers_process.py::test_writer_and_consumers_killed": 5,
    "test_original_bugs.py::"
    "test_16_3ab_recovery_keeps_data_after_failed_topics_and_big_entries": 5,
    "test_recovery.py::test_kill_during_recovery_is_harmless": 5,
    "test_bench_tools.py::test_backends_table_lists_every_backend": 5,
    "test_consumers_power.py::test_power_cut_keeps_named_positions": 4,
    "test_kit.py::test_the_pytest11_entry_point_loads_it_beside_p": 4,
    "test_cli.py::test_options_mirror_the_library": 4,
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
