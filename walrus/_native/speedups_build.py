"""cffi build script of ``walrus._native._speedups``: the record codec's hot loops in C.

``setup.py`` lists it in ``cffi_modules``; run directly it builds the module in place. The C
source is ``speedups.c`` beside this file; it needs zlib's header (``zlib1g-dev``) and uses
zlib's CRC-32, the one ``zlib.crc32`` computes, so both paths write identical bytes.
"""

from __future__ import annotations

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE = "walrus._native._speedups"

CDEF = """
int walrus_madvise(char *addr, uint64_t len, int advice);
int walrus_populate(char *addr, uint64_t len, int writable);
uint64_t walrus_encode_entry(char *dst, uint64_t pos, const char *data, uint64_t n,
                             uint32_t tid, uint64_t seq, uint64_t durable, uint32_t salt);
uint64_t walrus_encode_entries(char *dst_, uint64_t pos, const char *payloads_,
                               const uint64_t *lengths, uint64_t count, uint32_t tid,
                               uint32_t first_left, uint64_t first_seq, uint64_t durable,
                               uint32_t salt, uint64_t lsn_base, uint64_t *out_lsns);
uint64_t walrus_record_bytes(const char *buf_, uint64_t buflen, const uint64_t *lsns,
                             uint64_t count);
int64_t walrus_verify_entries(const char *buf_, uint64_t buflen, uint64_t base,
                              const uint64_t *lsns, uint64_t count, uint64_t segment,
                              uint32_t tid, uint64_t first_seq, uint32_t salt, uint64_t budget,
                              int first_free, uint64_t *out_starts, uint64_t *out_ends,
                              int *stop);
"""



def crc_tables() -> str:
    """C source of the slice-by-8 tables of zlib's CRC-32 (reflected polynomial 0xEDB88320)."""
    first = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        first.append(c)
    tables = [first]
    for _ in range(7):
        prev = tables[-1]
        tables.append([(v >> 8) ^ first[v & 0xFF] for v in prev])
    rows = ",\n".join("{" + ",".join(f"0x{v:08x}u" for v in t) + "}" for t in tables)
    return f"static const uint32_t CRC_TABLES[8][256] = {{\n{rows}\n}};\n"


ffibuilder = FFI()
ffibuilder.cdef(CDEF)
with open(os.path.join(HERE, "speedups.c")) as source:
    ffibuilder.set_source(MODULE, "#include <stdint.h>\n" + crc_tables() + source.read(),
                          libraries=["z"],
                          extra_compile_args=["-O3", "-std=c99"], py_limited_api=True)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=os.path.dirname(os.path.dirname(HERE)), verbose=False)
