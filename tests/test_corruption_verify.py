"""``walrus verify DIR`` after on-disk damage: every damaged entry listed, exit status 1.

Kept apart from test_corruption.py because the command lives on the ``cli`` branch: until
it is merged, this module skips itself; afterwards it runs as is.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

import pytest

from walrus import Walrus

from ._forks import run_interpreter
from ._workload import FIGURES, recovered
from .conftest import PLUGINS, ROOT
from .test_corruption import SEGMENT, Where, damage, pristine

pytest.importorskip("walrus._verify", reason="walrus verify is not merged yet (branch cli)")

__all__ = ["pristine"]  # the fixture, shared with test_corruption
LINE = re.compile(r"^DAMAGED topic '(?P<topic>[^']+)' entry (?P<offset>\d+): .* "
                  r"\((?P<file>\S+) at byte (?P<pos>\d+)\)$")
STRETCH = re.compile(r"^DAMAGED topic '(?P<topic>[^']+)' entry (?P<offset>\d+): lost in a "
                     r"damaged stretch from byte (?P<lo>\d+) to (?P<hi>\d+) \((?P<file>\S+)\)$")
"""An entry whose header lies inside a damaged stretch: where it began is not recoverable
from the bytes (nor, with its index also damaged, from anywhere), so verify names the
stretch; the check is that the stretch holds the entry's true position."""


def verify(path: Path, backend: str) -> tuple[int, dict[tuple[str, int], tuple[str, range]]]:
    """Run the command; returns its exit status and where it says each damaged entry is."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(PLUGINS)]))
    out = run_interpreter(["-m", "walrus", "verify", str(path), "--backend", backend], env, 120,
                     ROOT)
    assert out.returncode in (0, 1), out.stderr.decode()
    listed = {}
    for line in out.stdout.decode().splitlines():
        if match := LINE.match(line):
            pos = int(match["pos"])
            listed[(match["topic"], int(match["offset"]))] = (Path(match["file"]).name,
                                                              range(pos, pos + 1))
        elif match := STRETCH.match(line):
            listed[(match["topic"], int(match["offset"]))] = (
                Path(match["file"]).name, range(int(match["lo"]), int(match["hi"])))
    return out.returncode, listed


def test_verify_lists_every_damaged_entry(pristine: tuple[Path, list[Where]], tmp_path: Path,
                                          backend: str) -> None:
    source, where = pristine
    at = {(w.topic, w.offset): (w.file, w.pos) for w in where}
    status, listed = verify(source, backend)
    assert status == 0 and not listed
    rng = random.Random(f"verify-{backend}")
    for trial in range(15):
        path = tmp_path / f"t{trial}"
        shutil.copytree(source, path)
        damage(path, rng, rng.randint(1, 4))
        status, listed = verify(path, backend)
        with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT, read_only=True) as wal:
            damaged = {(topic, offset) for topic in wal.topics()
                       for offset in recovered(wal, topic).damaged}
        FIGURES["walrus verify runs after damage"] += 1
        missing = damaged - set(listed)
        assert not missing, f"verify did not list {sorted(missing)}"
        if damaged:
            assert status == 1
        for key in damaged:
            file, span = listed[key]
            assert file == at[key][0] and at[key][1] in span, (key, listed[key], at[key])
