"""The record CRC in C (``walrus/_native/record.h``): by carry-less multiplication where the
CPU has it, else by the slice-by-8 tables and zlib; both give zlib's CRC-32, at every length
around the switches (64 bytes, multiples of 16, 512 bytes, 64 KiB)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from walrus import _speedups
from walrus._native import hot

ROOT = Path(__file__).resolve().parent.parent
needs_c = pytest.mark.skipif(not _speedups.ACCELERATED or _speedups.hot_append is None,
                             reason=f"{_speedups.REASON}; {_speedups.HOT_REASON}")

CHILD = """
import mmap, sys
from walrus import _codec, _speedups
from walrus._native import hot
from walrus.backends._mmap import address_of, unpin
module, _ = hot()
print(module.direct()[2])
sizes = list(range(0, 1100)) + [4095, 4096, 65535, 65536, 65537, 70000, (1 << 20) + 5]
with mmap.mmap(-1, (1 << 20) + 4096) as view:
    address = address_of(view)
    try:
        for n in sizes:
            data = bytes((i * 31 + n) & 0xFF for i in range(n))
            salt = (n * 2654435761) & 0xFFFFFFFF
            _speedups.encode_entry(address, 8, data, n, 3, n, 0, salt)
            expected = bytearray(_codec.record_size(n) + 8)
            end = _codec.encode_into(expected, 8, _codec.ENTRY, 3, 0, n, 0, data, salt)
            assert view[8:end] == expected[8:end], n
            assert _codec.decode_entry(view, 8, salt, n)[2] == data, n
    finally:
        unpin(address)
print("ok")
"""


def run_child(tables: bool) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("WALRUS_CRC_TABLES", None)
    if tables:
        env["WALRUS_CRC_TABLES"] = "1"
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@needs_c
def test_the_carry_less_crc_is_zlibs_where_the_cpu_has_it() -> None:
    with open("/proc/cpuinfo") as info:
        flags = info.read().replace("\n", " ") + " "
    has = " pclmulqdq " in flags and " sse4_1 " in flags
    in_use, done = run_child(tables=False)
    assert done == "ok"
    assert in_use == str(has and platform.machine() == "x86_64")


@needs_c
def test_the_table_crc_is_zlibs_too() -> None:
    """WALRUS_CRC_TABLES=1 keeps the tables (as on a CPU without PCLMULQDQ)."""
    assert run_child(tables=True) == ["False", "ok"]


def test_the_module_says_which_crc_it_uses() -> None:
    module, _reason = hot()
    if module is None:
        pytest.skip("the C hot paths are not built")
    assert isinstance(module.direct()[2], bool)
