"""Waking waiting readers after an append: outside the append lock, and never making a done
append look failed (the rule is in ``walrus/_wakeup.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from walrus import FsyncSchedule, Walrus

from .conftest import WalFactory

APPENDS: dict[str, Callable[[Walrus], int]] = {
    "append": lambda wal: wal.append_for_topic("t", b"new"),
    "batch": lambda wal: wal.batch_append_for_topic("t", [b"new"]),
}


def hook_raising(wal: Walrus, exc: BaseException) -> list[bool]:
    """Make the log's waiting-reads hook raise ``exc``; returns where each call found the
    append lock (True: held)."""
    log = wal._log
    calls: list[bool] = []

    def hook(_t: Any) -> None:
        calls.append(log.mutex.locked())
        raise exc

    log.watch_visible(hook)
    return calls


def payloads(wal: Walrus) -> list[bytes]:
    wal._log.watch_visible(None)
    return [e.data for e in wal.batch_read_for_topic("t", 1 << 20, checkpoint=False)]


@pytest.fixture
def wal(open_wal: WalFactory) -> Walrus:
    wal = open_wal(fsync_schedule=FsyncSchedule.NoFsync)
    wal.append_for_topic("t", b"old")
    return wal


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("how", list(APPENDS))
def test_an_interrupt_during_the_wake_up_carries_the_appended_offset(
        wal: Walrus, how: str, interrupt: type[BaseException]) -> None:
    calls = hook_raising(wal, interrupt())
    with pytest.raises(interrupt) as raised:
        APPENDS[how](wal)
    assert raised.value.walrus_appended == ("t", 1)  # type: ignore[attr-defined]
    assert any("first offset 1" in note for note in raised.value.__notes__)
    assert calls == [False]  # called once, outside the append lock
    assert payloads(wal) == [b"old", b"new"]


@pytest.mark.parametrize("how", list(APPENDS))
def test_a_failing_waker_is_logged_and_the_append_returns(
        wal: Walrus, how: str, caplog: pytest.LogCaptureFixture) -> None:
    hook_raising(wal, RuntimeError("event loop is closed"))
    assert APPENDS[how](wal) == 1
    assert "the append of offset 1 is done" in caplog.text
    assert payloads(wal) == [b"old", b"new"]


def test_a_failing_waker_does_not_keep_the_others_asleep(wal: Walrus) -> None:
    woken: list[str] = []

    def bad() -> None:
        woken.append("bad")
        raise RuntimeError("event loop is closed")

    wal._waits.add("t", bad)
    wal._waits.add("t", lambda: woken.append("good"))
    assert wal.append_for_topic("t", b"new") == 1
    assert woken == ["bad", "good"]
    assert wal._waits.count("t") == 0


def test_an_append_to_a_topic_nobody_waits_for_takes_no_waiter_lock(
        wal: Walrus, monkeypatch: pytest.MonkeyPatch) -> None:
    waits = wal._waits
    looked: list[str] = []
    wake_name = waits.wake_name
    monkeypatch.setattr(waits, "wake_name", lambda name: (looked.append(name), wake_name(name)))
    waits.add("other", lambda: None)
    assert wal.append_for_topic("t", b"new") == 1
    assert looked == []  # the lock-taking part never ran for "t"
    assert waits.count("other") == 1
    wal.append_for_topic("other", b"x")
    assert looked == ["other"]
    assert waits.count("other") == 0
