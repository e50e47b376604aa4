"""Bounded disk space and bounded file descriptors."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from walrus import FsyncSchedule, ReadConsistency, Walrus

from ._quiesce import quiesced
from .conftest import WalFactory, drain, segment_files


def _reclaim(wal: Walrus) -> None:
    wal.flush()
    wal._background.run_once()  # type: ignore[union-attr]


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_blocks * 512 for f in path.iterdir() if f.is_file())


def test_steady_producer_and_consumer_run_in_bounded_space(open_wal: WalFactory,
                                                           tmp_path: Path) -> None:
    wal = open_wal(tmp_path / "w", segment_size=64 << 10,
                   consistency=ReadConsistency.AtLeastOnce(persist_every=50))
    payload = b"p" * 500
    peak_files = 0
    total = 0
    for round_ in range(60):  # ~3 MB through 64 KiB segments
        wal.batch_append_for_topic("work", [payload] * 100)
        total += 100
        consumed = drain(wal, "work")
        assert len(consumed) == 100
        if round_ % 10 == 9:
            _reclaim(wal)
            peak_files = max(peak_files, len(segment_files(tmp_path / "w")))
    assert total * len(payload) > 40 * (64 << 10)  # far more data than the bound below
    assert peak_files <= 4
    assert disk_bytes(tmp_path / "w") < 8 * (64 << 10)


def test_an_unconsumed_topic_keeps_its_segments(open_wal: WalFactory, tmp_path: Path) -> None:
    wal = open_wal(tmp_path / "w", segment_size=16 << 10)
    for i in range(600):
        wal.append_for_topic("kept", b"%04d" % i * 10)
        wal.append_for_topic("eaten", b"x" * 40)
    drain(wal, "eaten")
    _reclaim(wal)
    wal.close()
    wal = open_wal(tmp_path / "w", segment_size=16 << 10)
    assert [int(x[:4]) for x in drain(wal, "kept")] == list(range(600))


def test_reclaimed_offsets_are_reported_not_invented(open_wal: WalFactory,
                                                     tmp_path: Path) -> None:
    from walrus import OffsetOutOfRangeError

    wal = open_wal(tmp_path / "w", segment_size=16 << 10)
    for i in range(1000):
        wal.append_for_topic("t", b"%05d" % i * 8)
    for _ in range(900):
        wal.read_next("t")
    _reclaim(wal)
    with pytest.raises(OffsetOutOfRangeError, match="reclaimed"):
        wal.batch_read_for_topic("t", 100, checkpoint=False, start_offset=0)
    assert wal.read_next("t").offset == 900  # type: ignore[union-attr]
    wal.close()
    wal = open_wal(tmp_path / "w", segment_size=16 << 10)
    assert wal.read_next("t").offset == 901  # type: ignore[union-attr]
    assert wal.get_topic_entry_count("t") == 98


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_file_descriptors_stay_bounded_with_thousands_of_topics(open_wal: WalFactory,
                                                                tmp_path: Path) -> None:
    before = open_fds()
    wal = open_wal(tmp_path / "w", segment_size=256 << 10,
                   fsync_schedule=FsyncSchedule.NoFsync)
    for round_ in range(3):
        for k in range(3500):
            wal.append_for_topic(f"topic-{k}", b"%d" % round_ * 50)
    assert len(wal.topics()) == 3500
    assert open_fds() - before < 64
    wal.close()
    assert open_fds() <= before + 1


def fds_into(directory: Path) -> int:
    """Descriptors of this process open on files in ``directory`` (not the io_uring rings,
    the descriptors held back, or anything else the process has open)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor, closed meanwhile
            continue
        count += target.startswith(f"{directory}{os.sep}")
    return count


def test_a_writer_keeps_one_descriptor_per_segment_it_retains(tmp_path: Path,
                                                              backend: str) -> None:
    """Nobody consumes, so every segment stays: a writer must not hold more descriptors for
    them than an observer needs (one each), or a long backlog runs the process out of them
    twice as early (the mmap backend once kept a second one, for syncs, in every segment)."""
    path = tmp_path / "w"
    wal = Walrus(data_dir=path, backend=backend, segment_size=8192)
    for _ in range(400):
        wal.append_for_topic("t", b"x" * 2000)
    _reclaim(wal)  # syncs and indexes every sealed segment
    retained = len(wal._log.segments)
    assert retained > 100
    # the sealed segments one each; the one written and the next one made ready, two each
    # on mmap; the directory lock's file
    assert fds_into(path) <= retained + 4
    wal.close()
    reopened = Walrus(data_dir=path, backend=backend, segment_size=8192)
    assert fds_into(path) <= retained + 4
    assert len(drain(reopened, "t")) == 400
    reopened.close()
    assert fds_into(path) == 0


def test_opening_a_log_takes_one_descriptor_per_segment(tmp_path: Path, backend: str) -> None:
    """A log that a writer could keep within a limit opens within it too: opening must not
    take more descriptors per segment than keeping them does (the mmap backend took two per
    segment while opening, and gave one back only once each was found indexed)."""
    from .conftest import run_child

    path = tmp_path / "w"
    with Walrus(data_dir=path, backend=backend, segment_size=8192) as wal:
        for _ in range(400):
            wal.append_for_topic("t", b"x" * 2000)
        retained = len(wal._log.segments)
    assert retained > 100
    opened = run_child(f"""
        import os, resource, sys
        from walrus import Walrus
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        free = {retained} + 40  # each segment, and what any writer holds besides
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + free,
                                                    hard))
        with Walrus(data_dir=sys.argv[1], backend=sys.argv[2], segment_size=8192) as wal:
            print(wal.topic_info("t").next_offset)
    """, str(path), backend)
    assert int(opened.stdout) == 400


def test_a_settled_mapped_file_still_writes_and_syncs(tmp_path: Path) -> None:
    """``settle`` closes the descriptor the mmap backend keeps for syncs; a later write and
    sync (a log cut back into that segment after a failed sync) must still reach the disk."""
    from walrus.backends._mmap import MmapBackend

    path = str(tmp_path / "f")
    file = MmapBackend().open(path, size=8192, create=True)
    fds = open_fds()
    file.settle()
    assert open_fds() == fds - 1
    file.write(100, b"after settle")
    file.sync()
    assert open_fds() == fds  # kept again, for the syncs that may follow
    file.close()
    assert Path(path).read_bytes()[100:112] == b"after settle"


def test_a_file_the_mmap_backend_cannot_map_is_not_left_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of descriptors, mapping a new segment fails after the file was created: the
    file must go too, or the next attempt at that segment number finds it there."""
    from walrus.backends import _mmap

    def no_descriptor_left(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(_mmap.mmap, "mmap", no_descriptor_left)
    path = tmp_path / "f"
    fds = open_fds()
    with pytest.raises(OSError, match="Too many open files"):
        _mmap.MmapBackend().open(str(path), size=8192, create=True)
    assert not path.exists()
    assert open_fds() == fds


OUT_OF_DESCRIPTORS = """
    import errno, os, resource, sys, time
    from walrus import StorageError, Walrus

    path, backend = sys.argv[1:3]
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 120, hard))
    wal = Walrus(path, backend=backend, segment_size=8192)
    appended = 0
    while True:
        try:
            wal.append_for_topic("t", b"%06d" % appended * 300)
        except StorageError as exc:
            assert exc.errno == errno.EMFILE, exc
            break
        appended += 1
"""
"""A child that appends to 't' until the process has no descriptor left for the next
segment (its limit set 120 above what it has open), as ``appended``; ``wal`` stays open."""


def test_a_writer_out_of_descriptors_fails_cleanly_and_loses_nothing(tmp_path: Path,
                                                                    backend: str) -> None:
    """Every segment kept holds a descriptor: an append that needs a new segment when the
    process has none left raises ``StorageError`` (EMFILE), and with a higher limit the
    log reopens with every entry acknowledged before it, and goes on from there."""
    from .conftest import run_child

    closed = OUT_OF_DESCRIPTORS + """
    wal.close()
    print(appended)
"""
    appended = int(run_child(closed, str(tmp_path / "w"), backend).stdout)
    assert appended > 100
    with Walrus(data_dir=tmp_path / "w", backend=backend) as wal:
        assert [int(data[:6]) for data in drain(wal, "t")] == list(range(appended))
        assert wal.append_for_topic("t", b"after") == appended
        assert wal.damage() == []


OUT_AND_BACK = OUT_OF_DESCRIPTORS + """
    def retried(call):
        deadline = time.monotonic() + 30
        while True:
            try:
                return call()
            except StorageError as exc:  # the worker deletes what the cursor passed
                assert exc.errno == errno.EMFILE, exc
                assert time.monotonic() < deadline, f"still out of descriptors: {exc}"
                time.sleep(0.05)

    consumed = 0
    while (entry := retried(lambda: wal.read_next("t"))) is not None:
        assert (entry.offset, int(entry.data[:6])) == (consumed, consumed), entry
        consumed += 1
    assert consumed == appended, (consumed, appended)
    offset = retried(lambda: wal.append_for_topic("t", b"after"))
    wal.close()
    print(appended, offset)
"""


def test_a_log_out_of_descriptors_frees_them_once_its_consumers_catch_up(
        tmp_path: Path, backend: str) -> None:
    """The worker deletes the segments the consumer passed even when the process has no
    descriptor left (it holds a few back for that): appends then go on, and the consumer's
    cursor, whose records need a new segment too, is stored again."""
    from .conftest import run_child

    appended, offset = map(int, run_child(OUT_AND_BACK, str(tmp_path / "w"),
                                          backend).stdout.split())
    assert appended > 100
    assert offset == appended  # nothing lost, no offset handed out twice
    with Walrus(data_dir=tmp_path / "w", backend=backend) as wal:
        entry = wal.read_next("t")
        assert entry is not None and (entry.offset, entry.data) == (appended, b"after")


def test_a_segment_whose_directory_sync_fails_is_not_left_open(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of descriptors right after a new segment file was made (its directory's sync
    needs one more): the file must go, with its descriptors, and the worker must learn that
    the process ran out. A spare made that way stayed open (and on disk) for good."""
    from walrus import _making

    path = tmp_path / "w"
    wal = Walrus(data_dir=path, backend=backend, segment_size=8192)
    try:
        with quiesced(wal):
            maker = wal._log._maker  # type: ignore[attr-defined]
            spare, maker._spare = maker._spare, None  # dropped: the next is made anew
            _making.discard(spare)
            files, fds = sorted(path.glob("*.wal")), fds_into(path)

            def no_descriptor_left(directory: str) -> None:
                raise OSError(errno.EMFILE, "Too many open files")

            monkeypatch.setattr(_making, "sync_directory", no_descriptor_left)
            with pytest.raises(OSError, match="Too many open files"):
                wal._log.prepare_spare()
            monkeypatch.undo()
            assert sorted(path.glob("*.wal")) == files
            assert fds_into(path) == fds
            assert wal._background.reserve.starved  # type: ignore[union-attr]
    finally:
        wal.close()


def test_an_open_that_cannot_start_its_worker_keeps_nothing(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No thread to be had: the open raises, and leaves no descriptor (those held back for
    the worker included) and no lock on the directory behind."""
    from walrus import _walrus

    with Walrus(data_dir=tmp_path / "w", backend=backend) as wal:
        wal.append_for_topic("t", b"x")
    fds = open_fds()

    def no_thread(*args: object, **kwargs: object) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(_walrus, "Background", no_thread)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        Walrus(data_dir=tmp_path / "w", backend=backend)
    monkeypatch.undo()
    assert open_fds() == fds
    with Walrus(data_dir=tmp_path / "w", backend=backend) as wal:
        assert wal.get_topic_entry_count("t") == 1


def test_close_releases_threads_and_files(tmp_path: Path, backend: str) -> None:
    import threading

    threads, fds = threading.active_count(), open_fds()
    for i in range(5):
        with Walrus(data_dir=tmp_path / f"w{i}", backend=backend, segment_size=8192) as wal:
            for j in range(300):
                wal.append_for_topic("t", b"%d" % j * 20)
    assert threading.active_count() == threads
    assert open_fds() == fds


def test_entries_appended_while_reclamation_decides_are_kept(open_wal: WalFactory,
                                                               tmp_path: Path) -> None:
    """Reclamation reads the cursors, then waits for a sync pass, then deletes: entries
    appended in between (a new topic's, and a fully consumed topic's next ones) may fill
    whole segments, and those must not count as passed."""
    wal = open_wal(tmp_path / "w", segment_size=64 << 10,
                   consistency=ReadConsistency.AtLeastOnce(persist_every=1))
    payload = b"p" * 1000
    wal.batch_append_for_topic("done", [payload] * 200)  # several segments
    assert len(drain(wal, "done")) == 200
    background = wal._background
    assert background is not None
    real_synced = background.synced

    appended = []

    def synced_while_others_append() -> bool:
        for _ in range(3):  # whole segments of entries nobody has read
            wal.batch_append_for_topic("late", [payload] * 60)
            wal.batch_append_for_topic("done", [payload] * 60)
            appended.append(60)
        return real_synced()

    background.synced = synced_while_others_append  # type: ignore[method-assign]
    _reclaim(wal)
    background.synced = real_synced  # type: ignore[method-assign]
    assert appended
    assert drain(wal, "late") == [payload] * sum(appended)
    assert len(drain(wal, "done")) == sum(appended)
    wal.close()
    reopened = open_wal(tmp_path / "w", segment_size=64 << 10)
    assert reopened.damage() == []


def test_a_kill_between_a_reclaimed_segment_s_two_files_leaves_nothing_behind(
        tmp_path: Path, backend: str) -> None:
    """Reclamation deletes a segment's index and the segment: killed between the two, the
    next open must find the log whole (nothing lost, nothing reported) and a later
    reclamation must leave no file of that segment (an index without its segment stayed for
    good when the segment went first)."""
    from .test_recovery_damage import crashed

    out = crashed(tmp_path, backend, """
        import types
        from walrus import _reclaim

        def killed(path):
            sys.stdout.flush()
            os.unlink(path)
            os.kill(os.getpid(), signal.SIGKILL)

        _reclaim.os = types.SimpleNamespace(unlink=killed, path=os.path)
        w.batch_append_for_topic('t', [b'x' * 1000] * 30)
        while w.read_next('t') is not None:
            pass
        w.flush()
        w._background.run_once()
        print('not killed')
    """, 8192, "NoFsync")
    assert "not killed" not in out
    with Walrus(data_dir=tmp_path, backend=backend, segment_size=8192) as wal:
        assert wal.damage() == []
        assert wal.read_next("t") is None
        assert wal.topic_info("t").next_offset == 30
        _reclaim(wal)
    stems = {p.stem for p in tmp_path.glob("*.wal")}
    assert stems and {p.stem for p in tmp_path.glob("*.idx")} <= stems
