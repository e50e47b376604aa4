"""A corruption fuzzer: damage every kind of file a data directory holds, then use the log.

Directories are built once per backend, cleanly closed (every segment indexed), the same
without index files, or left by a process that died (the last segments unindexed): several
topics, single appends and batches
(one of ``MAX_BATCH_ENTRIES`` entries, one entry larger than a read window), consumed
entries, a clean mark, many 8 KiB segments. Each trial damages a copy (bit flips, zeroed
runs, garbage, truncation, bytes cut out, deleted files: segments, index files, the lock
file), reopens it, verifies it, reads everything (peeks, then consuming reads of every kind),
appends, reopens again, and checks:

* no wrong data: every payload returned is exactly the one acknowledged at its offset;
* reads stop at damage: consuming reads go on from where they stopped, each offset once, as
  data or as a ``CorruptionError`` naming it; peeks move nothing;
* no offset reused: a new append never gets the offset of an acknowledged entry, a new
  topic never gets the id of a topic the directory held, and what is appended after the
  damage survives a reopen;
* no hang (a time limit per trial) and no exception outside ``WalrusError``;
* every acknowledged entry not yet consumed is read back, reported by a ``CorruptionError``,
  or missing (counted; :func:`check_loss_reported` is where missing ones are checked against
  what the log reports as lost).

The offset and topic id checks belong to recovery: a breach of them is counted instead of
failing the trial only for the documented limits (:func:`known_recovery_gap`: bytes cut
out of the newest segment, with no index for it, when recovery reports the damage, or that
segment deleted).
``RELIABILITY_SCALE`` multiplies the trials; ``FUZZ_SEED`` picks other
seeds.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import threading
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from walrus import (
    MAX_BATCH_ENTRIES,
    CorruptionError,
    Entry,
    FsyncSchedule,
    OffsetOutOfRangeError,
    Walrus,
    WalrusError,
    _codec,
)
from walrus._segment import SPARE_PREV_END
from walrus._verify import verify_directory

from ._workload import FIGURES, TOPICS, payload
from .conftest import BACKENDS, run_child

SEGMENT = 8192
TRIALS = max(1, round(float(os.environ.get("RELIABILITY_SCALE", "1"))))
"""Trials per kind, variant and backend (each about 0.15 s)."""
VARIANTS = ("closed", "unindexed", "crashed")
"""How the damaged directory was left: closed cleanly (every segment indexed), the same
without its index files, or by a process that synced every append (SyncEach) and died (its
last segments unindexed)."""
SEED = os.environ.get("FUZZ_SEED", "0")
TRIAL_TIMEOUT = 60.0
"""A trial taking longer hangs: recovery and reads of a few hundred KiB take well under 1 s."""
FULL = "full"
"""The topic created by one batch of MAX_BATCH_ENTRIES entries."""
NEWBORN = "newborn"
"""A topic created by the last appends (its TOPIC record lies in the last segment)."""
LATE = "late"
"""A topic created after the damage."""
HUGE = "huge"
"""A topic holding an entry larger than a read window (256 KiB), between two small ones."""

# --- the directories -------------------------------------------------------------------------


def expected(topic: str, offset: int) -> bytes:
    """The payload acknowledged at ``offset`` of ``topic``."""
    if topic == FULL:
        return b"full|%d" % offset
    if topic == HUGE and offset == 1:
        return b"huge|1|" + bytes(range(256)) * 1200
    return payload(topic, offset)


@dataclass
class Plan:
    """What the building process acknowledged, per topic."""

    acked: Counter[str] = field(default_factory=Counter)
    consumed: Counter[str] = field(default_factory=Counter)


def build(path: str, backend: str, crash: bool) -> Plan:
    """Write the directory; with ``crash`` every append is synced (SyncEach) and the process
    dies at the end instead of closing."""
    rng = random.Random(1234)
    plan = Plan()
    wal = Walrus(data_dir=path, backend=backend, segment_size=SEGMENT,
                 fsync_schedule=FsyncSchedule.SyncEach if crash else FsyncSchedule.NoFsync)

    def append(topic: str, count: int) -> None:
        first = plan.acked[topic]
        data = [expected(topic, first + i) for i in range(count)]
        if count == 1 and rng.random() < 0.7:
            wal.append_for_topic(topic, data[0])
        else:
            wal.batch_append_for_topic(topic, data)
        plan.acked[topic] += count

    def some_appends(n: int) -> None:
        for _ in range(n):
            append(rng.choice(TOPICS), 1 if rng.random() < 0.6 else rng.randint(2, 12))

    some_appends(40)
    append(FULL, MAX_BATCH_ENTRIES)
    for _ in range(3):
        append(HUGE, 1)
    some_appends(20)
    for _ in range(6):
        wal.read_next(TOPICS[0])
    wal.batch_read_for_topic(TOPICS[1], 0)  # max_bytes 0: exactly one entry
    plan.consumed.update({TOPICS[0]: 6, TOPICS[1]: 1})
    for _ in range(300):
        wal.read_next(FULL)
    plan.consumed[FULL] = 300
    wal.mark_topic_clean(TOPICS[2])
    some_appends(20)
    wal.flush()  # what follows claims that everything before it is durable
    some_appends(3)
    append(NEWBORN, 3)
    some_appends(2)
    if crash:  # what was acknowledged, for the parent; then die without closing
        Path(path + ".plan").write_text(json.dumps([plan.acked, plan.consumed]))
        os._exit(0)
    wal.close()
    return plan


@dataclass
class Pristine:
    path: Path
    plan: Plan
    records: list[tuple[str, _codec.Record]]
    """Every valid record: (segment file name, record)."""

    @property
    def topic_ids(self) -> set[int]:
        """The ids of the topics the directory held before the damage."""
        return {r.topic_id for _, r in self.records if r.kind == _codec.TOPIC}


def records_of(path: Path) -> list[tuple[str, _codec.Record]]:
    found = []
    for seg in sorted(path.glob("*.wal")):
        data = seg.read_bytes()
        try:
            header = _codec.decode_segment_header(data)
        except _codec.FormatError:
            continue
        result = _codec.scan(data, _codec.SEGMENT_HEADER_SIZE, len(data) - _codec.HEADER_SIZE,
                             header.salt, header.number << _codec.SEG_SHIFT)
        found += [(seg.name, r) for r in result.records]
    return found


@pytest.fixture(scope="module")
def pristines(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Pristine]:
    """Built on first use, one per backend and ending."""
    return {}


def pristine(cache: dict[tuple[str, str], Pristine], factory: pytest.TempPathFactory,
             backend: str, variant: str) -> Pristine:
    key = (backend, variant)
    if key not in cache:
        path = factory.mktemp(f"pristine-{variant}") / "w"
        if variant == "crashed":
            run_child("""
                import sys
                from tests.test_fuzz_corruption import build
                build(sys.argv[1], sys.argv[2], crash=True)
            """, str(path), backend)
            acked, consumed = json.loads(Path(f"{path}.plan").read_text())
            plan = Plan(Counter(acked), Counter(consumed))
        elif variant == "unindexed":  # recovery scans every segment
            closed = pristine(cache, factory, backend, "closed")
            shutil.copytree(closed.path, path)
            for index in path.glob("*.idx"):
                index.unlink()
            plan = closed.plan
        else:
            plan = build(str(path), backend, crash=False)
        cache[key] = Pristine(path, plan, records_of(path))
    return cache[key]


# --- damage ----------------------------------------------------------------------------------


Damage = Callable[[Path, random.Random, Pristine], str]


def _rewrite(file: Path, edit: Callable[[bytearray], None]) -> None:
    data = bytearray(file.read_bytes())
    edit(data)
    file.write_bytes(bytes(data))


def _flip_at(file: Path, pos: int, rng: random.Random) -> str:
    bit = rng.randrange(8)

    def edit(data: bytearray) -> None:
        data[pos] ^= 1 << bit

    _rewrite(file, edit)
    return f"bit {bit} of byte {pos} of {file.name}"


def _files(path: Path, *suffixes: str) -> list[Path]:
    """The files to damage: not an empty one (a crashed writer's file made a moment before
    the kill, not yet given its size: no byte of it to flip, cut or truncate)."""
    return sorted(p for p in path.iterdir()
                  if (p.suffix in suffixes or p.name in suffixes) and p.stat().st_size > 0)


def _record(p: Pristine, rng: random.Random,
            want: Callable[[_codec.Record], bool]) -> tuple[str, _codec.Record]:
    """A record of the wanted kind; half the time from the last segment, whose damage
    recovery cannot tell from an interrupted write by what follows it."""
    found = [(name, r) for name, r in p.records if want(r)]
    last = [(name, r) for name, r in found if name == found[-1][0]]
    return rng.choice(last if rng.random() < 0.5 else found)


def payload_flip(path: Path, rng: random.Random, p: Pristine) -> str:
    name, r = _record(p, rng, lambda r: r.kind == _codec.ENTRY and r.length > 0)
    return _flip_at(path / name, r.payload_pos + rng.randrange(r.length), rng)


def crc_flip(path: Path, rng: random.Random, p: Pristine) -> str:
    name, r = _record(p, rng, lambda r: True)
    return _flip_at(path / name, r.pos + rng.randrange(4), rng)


def length_flip(path: Path, rng: random.Random, p: Pristine) -> str:
    name, r = _record(p, rng, lambda r: True)
    return _flip_at(path / name, r.pos + 4 + rng.randrange(4), rng)


def record_header_flip(path: Path, rng: random.Random, p: Pristine) -> str:
    """topic id, kind, batch_left, seq or durable of a record."""
    name, r = _record(p, rng, lambda r: True)
    return _flip_at(path / name, r.pos + 8 + rng.randrange(24), rng)


def topic_record_flip(path: Path, rng: random.Random, p: Pristine) -> str:
    name, r = _record(p, rng, lambda r: r.kind == _codec.TOPIC)
    return _flip_at(path / name, r.pos + rng.randrange(_codec.HEADER_SIZE + r.length), rng)


def segment_header_flip(path: Path, rng: random.Random, p: Pristine) -> str:
    file = rng.choice(_files(path, ".wal"))
    return _flip_at(file, rng.randrange(_codec.SEGMENT_HEADER_SIZE), rng)


def random_flips(path: Path, rng: random.Random, p: Pristine) -> str:
    done = []
    for _ in range(rng.randint(1, 4)):
        file = rng.choice(_files(path, ".wal", ".idx"))
        done.append(_flip_at(file, rng.randrange(file.stat().st_size), rng))
    return "; ".join(done)


def _run(path: Path, rng: random.Random, fill: Callable[[int], bytes], suffix: str) -> str:
    file = rng.choice(_files(path, suffix))
    size = file.stat().st_size
    pos = rng.randrange(size)
    n = min(rng.choice([1, 8, 32, 64, 600]), size - pos)
    data = fill(n)

    def edit(buf: bytearray) -> None:
        buf[pos:pos + n] = data

    _rewrite(file, edit)
    return f"{n} bytes at {pos} of {file.name}"


def zero_run(path: Path, rng: random.Random, p: Pristine) -> str:
    return "zeroed " + _run(path, rng, bytes, ".wal")


def garbage(path: Path, rng: random.Random, p: Pristine) -> str:
    return "garbage: " + _run(path, rng, rng.randbytes, ".wal")


def truncate_segment(path: Path, rng: random.Random, p: Pristine) -> str:
    file = rng.choice(_files(path, ".wal"))
    size = rng.randrange(file.stat().st_size)
    os.truncate(file, size)
    return f"{file.name} cut to {size} bytes"


def cut_bytes(path: Path, rng: random.Random, p: Pristine) -> str:
    """Bytes taken out of the middle of a segment: everything after them moves."""
    file = rng.choice(_files(path, ".wal"))
    pos = rng.randrange(file.stat().st_size)
    n = rng.choice([1, 7, 8, 32, 600])

    def edit(buf: bytearray) -> None:
        del buf[pos:pos + n]

    _rewrite(file, edit)
    return f"{n} bytes cut out at {pos} of {file.name}"


def index_damage(path: Path, rng: random.Random, p: Pristine) -> str:
    files = _files(path, ".idx")
    if not files:
        return "no index to damage"
    file = rng.choice(files)
    how = rng.choice(["flip", "zero", "truncate", "garbage"])
    if how == "flip":
        return _flip_at(file, rng.randrange(file.stat().st_size), rng)
    if how == "truncate":
        size = rng.randrange(file.stat().st_size)
        os.truncate(file, size)
        return f"{file.name} cut to {size} bytes"
    return _run(path, rng, bytes if how == "zero" else rng.randbytes, ".idx")


def delete_file(path: Path, rng: random.Random, p: Pristine) -> str:
    file = rng.choice(_files(path, ".wal", ".idx", "LOCK"))
    file.unlink()
    return f"{file.name} deleted"


def lock_damage(path: Path, rng: random.Random, p: Pristine) -> str:
    lock = path / "LOCK"
    how = rng.choice(["garbage", "empty", "deleted"])
    if how == "deleted":
        lock.unlink(missing_ok=True)
    else:
        lock.write_bytes(rng.randbytes(rng.randint(1, 64)) if how == "garbage" else b"")
    return f"LOCK {how}"


KINDS: dict[str, Damage] = {f.__name__: f for f in (
    payload_flip, crc_flip, length_flip, record_header_flip, topic_record_flip,
    segment_header_flip, random_flips, zero_run, garbage, truncate_segment, cut_bytes,
    index_damage, delete_file, lock_damage)}
def last_segment(path: Path) -> str:
    """The name of the log's last segment (a spare made ahead of need is not part of it, nor
    a file the killed writer had just created and not yet given its size or its header)."""
    for f in sorted(path.glob("*.wal"), reverse=True):
        if f.stat().st_size < _codec.SEGMENT_HEADER_SIZE:
            continue
        head = f.read_bytes()[:_codec.SEGMENT_HEADER_SIZE]
        if not any(head):  # allocated, killed before its header was written
            continue
        header = _codec.decode_segment_header(head)
        if header.prev_end != SPARE_PREV_END:
            return f.name
    raise AssertionError(f"no segment in {path}")


def known_recovery_gap(kind: str, what: str, newest: str, variant: str,
                       gap: RecoveryGap) -> bool:
    """Is this one of the cases recovery cannot account for entry by entry?

    In a directory with no index for the log's newest segment (left by a crash, or its index
    deleted): bytes cut out of that segment or its end cut off (the entries that were in the
    missing bytes may be of any topic, and nothing else in the directory names them; recovery
    must still say so, with a damage report naming no topic), or the whole file deleted
    (docs/reliability.md, "Known limits"). Every other offset or topic-id breach fails the
    trial.
    """
    if variant == "closed" or newest not in what:
        return False
    return kind == "delete_file" or (kind in ("cut_bytes", "truncate_segment") and gap.loud)


# --- what a trial checks ---------------------------------------------------------------------


class Violation(AssertionError):
    """The log broke a promise in this trial."""


class RecoveryGap(Violation):
    """Recovery lost track of what the directory held (an offset, a topic id)."""

    def __init__(self, message: str, loud: bool) -> None:
        super().__init__(message)
        self.loud = loud
        """The log reported damage it could not tie to a topic (``Damage.topic`` None)."""


def require(condition: bool, message: str, gap: Walrus | None = None) -> None:
    """Raise a Violation unless ``condition`` holds: a RecoveryGap when ``gap`` is the log
    that recovery opened (the offset and topic-id checks)."""
    if not condition:
        if gap is None:
            raise Violation(message)
        raise RecoveryGap(message, any(d.topic is None for d in gap.damage()))


@dataclass
class Seen:
    """What the consuming reads of one topic met."""

    delivered: set[int] = field(default_factory=set)
    reported: set[int] = field(default_factory=set)
    """Offsets a CorruptionError named."""


def check_entries(topic: str, got: list[Entry], start: int | None) -> None:
    """Returned entries are the acknowledged ones, contiguous from ``start`` when known."""
    for i, e in enumerate(got):
        offset, data = e.offset, e.data
        require(e.topic == topic, f"{topic!r}: an entry of {e.topic!r}")
        require(data == expected(topic, offset),
                f"{topic!r}@{offset}: wrong data {bytes(data[:40])!r}")
        if start is not None:
            require(offset == start + i, f"{topic!r}: read {offset}, expected {start + i}")


def peek_everything(wal: Walrus, topic: str) -> None:
    """Every retained entry through start_offset reads: right data, or the error naming it."""
    t = wal._log.by_name[topic]
    offset = t.first_seq
    while offset < t.next_seq:
        try:
            got = wal.batch_read_for_topic(topic, 1 << 20, checkpoint=False,
                                           start_offset=offset)
        except CorruptionError as exc:
            require((exc.topic, exc.offset) == (topic, offset),
                    f"peek at {topic!r}@{offset} raised for {exc.topic!r}@{exc.offset}")
            offset += 1
            continue
        except OffsetOutOfRangeError:
            return
        require(bool(got), f"peek at {topic!r}@{offset} returned nothing")
        check_entries(topic, got, offset)
        offset += len(got)


def consume_everything(wal: Walrus, topic: str, rng: random.Random) -> Seen:
    """Consuming reads of every kind until the end; peeks in between move nothing."""
    seen = Seen()
    position: int | None = None
    for _ in range(6000):
        how = rng.choice(["next", "batch", "small batch", "peek next", "peek batch"])
        peek = how.startswith("peek")
        count = wal.get_topic_entry_count(topic)
        try:
            if how.endswith("next"):
                one = wal.read_next(topic, checkpoint=not peek)
                got = [] if one is None else [one]
            else:
                got = wal.batch_read_for_topic(topic, 0 if how == "small batch" else 1 << 20,
                                               checkpoint=not peek)
        except CorruptionError as exc:
            require(exc.topic == topic and exc.offset is not None,
                    f"{topic!r}: CorruptionError without topic and offset: {exc}")
            assert exc.offset is not None
            require(position is None or exc.offset == position,
                    f"{topic!r}: read at {position} raised for offset {exc.offset}")
            if peek:
                require(wal.get_topic_entry_count(topic) == count,
                        f"{topic!r}: a peek at damage moved the cursor")
            else:
                require(exc.offset not in seen.reported, f"{topic!r}@{exc.offset} twice")
                seen.reported.add(exc.offset)
                position = exc.offset + 1
            continue
        check_entries(topic, got, position)
        if peek:
            require(wal.get_topic_entry_count(topic) == count, f"{topic!r}: a peek moved")
            continue
        if not got:
            require(count == 0, f"{topic!r}: nothing to read, yet {count} unconsumed")
            return seen
        seen.delivered.update(e.offset for e in got)
        position = got[-1].offset + 1
    raise Violation(f"{topic!r}: consuming reads made no progress")


def check_loss_reported(topic: str, p: Pristine, seen: Seen, wal: Walrus) -> Counter[str]:
    """Every acknowledged entry the building process had not consumed: read back, reported
    by a CorruptionError, or missing; a missing one must be in what the log reports as lost
    (``Walrus.damage()``: at its offset, or in damage no topic can be named for). Returns how
    many of each.
    """
    reports = wal.damage()
    unnamed = any(d.topic is None for d in reports)
    outcome: Counter[str] = Counter()
    silent = []
    for offset in range(p.plan.consumed[topic], p.plan.acked[topic]):
        if offset in seen.delivered:
            outcome["read back"] += 1
        elif offset in seen.reported:
            outcome["reported damaged"] += 1
        else:
            outcome["missing"] += 1
            if not unnamed and not any(
                    d.topic == topic and d.first_offset is not None
                    and d.last_offset is not None and d.first_offset <= offset <= d.last_offset
                    for d in reports):
                silent.append(offset)
    require(not silent, f"{topic!r}: acknowledged entries lost without a report: {silent[:10]}",
            gap=wal)
    return outcome


def check_new_offsets(wal: Walrus, p: Pristine, fresh: dict[str, int]) -> None:
    """An append after the damage never gets an acknowledged entry's offset, and a topic
    created after it holds only its own entry."""
    for topic in [*p.plan.acked, LATE]:
        wal.append_for_topic(topic, b"after the damage")
        try:  # a peek: consumed, it could be reclaimed before the reopen that looks for it
            got = wal.read_next(topic, checkpoint=False)
        except CorruptionError as exc:
            raise Violation(f"{topic!r}: the new entry is unreadable: {exc}") from None
        require(got is not None and got.data == b"after the damage",
                f"{topic!r}: the new entry is not the next one: {got!r}")
        assert got is not None
        if topic == LATE:
            count = wal.get_topic_entry_count(topic)
            require(count == 1, f"a topic created after the damage holds {count} entries")
            tid = wal._log.by_name[LATE].tid  # another topic's id: its records would be ours
            require(tid not in p.topic_ids, f"a new topic got the id {tid} of an older one",
                    gap=wal)
        require(got.offset >= p.plan.acked[topic],
                f"{topic!r}: offset {got.offset} handed out again "
                f"({p.plan.acked[topic]} were acknowledged)", gap=wal)
        fresh[topic] = got.offset


def trial(p: Pristine, path: Path, backend: str, rng: random.Random) -> Counter[str]:
    outcome: Counter[str] = Counter()
    try:
        report = verify_directory(path, backend)
        outcome["verify found damage" if not report.ok else "verify found none"] += 1
    except WalrusError:
        outcome["verify refused"] += 1
    try:
        wal = Walrus(data_dir=path, backend=backend, segment_size=SEGMENT)
    except WalrusError:
        outcome["open refused"] += 1
        return outcome
    fresh: dict[str, int] = {}
    with wal:
        for topic in wal.topics():
            require(topic in p.plan.acked, f"a topic that was never created: {topic!r}")
            peek_everything(wal, topic)
        for topic in p.plan.acked:
            seen = consume_everything(wal, topic, rng)
            outcome.update(check_loss_reported(topic, p, seen, wal))
        check_new_offsets(wal, p, fresh)
    with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT) as wal:
        for topic, offset in fresh.items():
            try:
                got = wal.batch_read_for_topic(topic, 0, checkpoint=False, start_offset=offset)
            except OffsetOutOfRangeError:  # recovery moved the topic past it: lost
                got = []
            require([(e.offset, e.data) for e in got] == [(offset, b"after the damage")],
                    f"{topic!r}: the entry appended after the damage did not survive",
                    gap=wal)
    return outcome


def bounded(run: Callable[[], Counter[str]]) -> Counter[str]:
    """Run a trial in a thread, so that a hang fails it instead of the whole run."""
    result: list[Counter[str] | BaseException] = []

    def target() -> None:
        try:
            result.append(run())
        except BaseException as exc:  # handed to the caller
            result.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(TRIAL_TIMEOUT)
    if worker.is_alive():
        raise Violation(f"the trial did not finish within {TRIAL_TIMEOUT:.0f} s")
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def fuzz(kind: str, backend: str, variant: str, p: Pristine, where: Path) -> list[str]:
    """Run the trials of one kind; returns what went wrong, one line per failed trial."""
    failures = []
    for number in range(TRIALS):
        seed = f"{SEED}-{kind}-{backend}-{variant}-{number}"
        rng = random.Random(seed)
        path = where / f"{kind}-{number}"
        shutil.copytree(p.path, path)
        newest = last_segment(path)
        what = KINDS[kind](path, rng, p)
        FIGURES[f"corruption fuzzer trials ({kind})"] += 1
        try:
            outcome = bounded(lambda: trial(p, path, backend, rng))  # noqa: B023
        except RecoveryGap as exc:
            if not known_recovery_gap(kind, what, newest, variant, exc):
                failures.append(f"seed {seed!r} ({what}): {exc}")
            FIGURES["corruption fuzzer: trials that met a known recovery gap"] += 1
        except Violation as exc:
            failures.append(f"seed {seed!r} ({what}): {exc}")
        except WalrusError as exc:
            failures.append(f"seed {seed!r} ({what}): {type(exc).__name__}: {exc}")
        except Exception as exc:  # outside the documented errors
            failures.append(f"seed {seed!r} ({what}): undocumented {type(exc).__name__}: "
                            f"{exc}\n{traceback.format_exc(limit=-3)}")
        else:
            for name, count in outcome.items():
                FIGURES[f"corruption fuzzer: {name}"] += count
        shutil.rmtree(path, ignore_errors=True)
    FIGURES["corruption fuzzer trials"] += TRIALS
    FIGURES["corruption fuzzer failed trials"] += len(failures)
    return failures


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", KINDS)
def test_damage_never_breaks_a_promise(kind: str, variant: str, backend: str, tmp_path: Path,
                                       pristines: dict[tuple[str, str], Pristine],
                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    p = pristine(pristines, tmp_path_factory, backend, variant)
    failures = fuzz(kind, backend, variant, p, tmp_path)
    assert not failures, f"{len(failures)} of {TRIALS} trials failed:\n" + "\n".join(failures)


def test_every_kind_of_damage_has_trials() -> None:
    assert BACKENDS
