"""Backend registration through pluggy and selection with fallback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import walrus
from walrus import Availability, BackendSpec, BackendUnavailableError, Walrus, hookimpl
from walrus.backends._base import Backend
from walrus.plugins import plugin_manager
from walrus.plugins._selection import select_backend


class _Plugin:
    def __init__(self, *specs: BackendSpec, fail: bool = False) -> None:
        self.specs = specs
        self.fail = fail

    @hookimpl
    def walrus_register_backends(self) -> Any:
        if self.fail:
            raise RuntimeError("plugin exploded")
        return list(self.specs)


@pytest.fixture
def register() -> Iterator[Any]:
    added = []

    def add(plugin: object) -> None:
        plugin_manager().register(plugin)
        added.append(plugin)

    yield add
    for plugin in added:
        plugin_manager().unregister(plugin)


def _mmap_factory() -> Backend:
    return walrus.backend_spec("mmap").factory()


def test_builtins_are_registered_like_any_plugin() -> None:
    rows = {row.name: row for row in walrus.available_backends()}
    assert rows["mmap"].available and rows["pwrite"].available
    assert rows["mmap"].plugin == rows["pwrite"].plugin
    priorities = [row.priority for row in walrus.available_backends()]
    assert priorities == sorted(priorities, reverse=True)


def test_auto_picks_the_highest_priority_available(register: Any, tmp_path: Path) -> None:
    top = max(r.priority for r in walrus.available_backends())
    register(_Plugin(BackendSpec("broken-top", _mmap_factory, priority=top + 10,
                                 probe=lambda: Availability(False, "no hardware"))))
    name, _ = select_backend(None)
    assert name == max((r for r in walrus.available_backends() if r.available),
                       key=lambda r: r.priority).name
    with Walrus(data_dir=tmp_path, backend="broken-top,pwrite") as wal:
        assert wal.backend == "pwrite"


def test_explicit_unavailable_backend_raises_with_the_probe_reason(register: Any,
                                                                   tmp_path: Path) -> None:
    register(_Plugin(BackendSpec("nope", _mmap_factory,
                                 probe=lambda: Availability(False, "needs a unicorn"))))
    with pytest.raises(BackendUnavailableError, match="needs a unicorn"):
        Walrus(data_dir=tmp_path, backend="nope")
    with pytest.raises(BackendUnavailableError, match="no backend named"):
        Walrus(data_dir=tmp_path, backend="never-registered")
    assert not any(tmp_path.iterdir())


def test_fallback_logs_why(register: Any, caplog: pytest.LogCaptureFixture) -> None:
    register(_Plugin(BackendSpec("flaky", _mmap_factory,
                                 probe=lambda: Availability(False, "disk says no"))))
    with caplog.at_level(logging.INFO, logger="walrus"):
        name, _ = select_backend("flaky,ghost,pwrite")
    assert name == "pwrite"
    assert "disk says no" in caplog.text and "ghost" in caplog.text


def test_env_selects_and_argument_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WALRUS_BACKEND", "pwrite")
    with Walrus(data_dir=tmp_path / "a") as wal:
        assert wal.backend == "pwrite"
    with Walrus(data_dir=tmp_path / "b", backend="mmap") as wal:
        assert wal.backend == "mmap"


def test_a_probe_that_raises_or_lies_is_unavailable(register: Any) -> None:
    def explode() -> Availability:
        raise OSError("boom")

    register(_Plugin(BackendSpec("raises", _mmap_factory, probe=explode),
                     BackendSpec("lies", _mmap_factory, probe=lambda: True)))  # type: ignore[arg-type,return-value]
    rows = {r.name: r for r in walrus.available_backends()}
    assert not rows["raises"].available and "boom" in rows["raises"].reason
    assert not rows["lies"].available and "not an Availability" in rows["lies"].reason


def test_a_broken_plugin_is_logged_and_skipped(register: Any,
                                               caplog: pytest.LogCaptureFixture) -> None:
    register(_Plugin(fail=True))
    register(_Plugin("not a spec"))  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="walrus"):
        names = [r.name for r in walrus.available_backends()]
    assert "mmap" in names and "plugin exploded" in caplog.text
    assert "not a BackendSpec" in caplog.text


def test_factory_failures_fall_back(register: Any) -> None:
    def bad_factory() -> Backend:
        raise RuntimeError("cannot build")

    register(_Plugin(BackendSpec("badfactory", bad_factory, priority=10_000)))
    assert select_backend(None)[0] != "badfactory"
    with pytest.raises(BackendUnavailableError, match="cannot build"):
        select_backend("badfactory")


def test_a_plugin_can_wrap_a_builtin(register: Any, tmp_path: Path) -> None:
    """A third party reuses a built-in through backend_spec and sees real I/O."""
    calls: list[str] = []
    inner = walrus.backend_spec("pwrite")

    class Counting(Backend):
        name = "counting"

        def __init__(self) -> None:
            self.inner = inner.factory()

        def open(self, path: str, **kwargs: Any) -> Any:
            calls.append(Path(path).name)
            return self.inner.open(path, **kwargs)

    register(_Plugin(BackendSpec("counting", Counting)))
    with Walrus(data_dir=tmp_path, backend="counting") as wal:
        wal.append_for_topic("t", b"through the wrapper")
        assert wal.backend == "counting"
    assert calls and calls[0].endswith(".wal")
    with Walrus(data_dir=tmp_path, backend="mmap") as wal:  # same format, another backend
        assert wal.read_next("t").data == b"through the wrapper"  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["", "a,b", " padded", "auto", 3])
def test_spec_names_are_validated(name: object) -> None:
    with pytest.raises(ValueError):
        BackendSpec(name, _mmap_factory)  # type: ignore[arg-type]


def test_every_backend_reads_every_other_backends_directory(tmp_path: Path) -> None:
    names = [r.name for r in walrus.available_backends() if r.available]
    for writer in names:
        path = tmp_path / writer
        with Walrus(data_dir=path, backend=writer, segment_size=16 << 10) as wal:
            for i in range(300):
                wal.append_for_topic("x", b"%d" % i * 10)
            wal.batch_append_for_topic("x", [b"batch"] * 10)
            wal.read_next("x")
        for reader in names:
            with Walrus(data_dir=path, backend=reader, segment_size=16 << 10) as wal:
                entries = wal.batch_read_for_topic("x", 1 << 20, checkpoint=False)
                assert [e.offset for e in entries] == list(range(1, 310))
                assert entries[0].data == b"1" * 10 and entries[-1].data == b"batch"
