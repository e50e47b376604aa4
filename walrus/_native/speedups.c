/* C accelerators for the record codec (walrus._native._speedups).
 *
 * The same format as walrus/_codec.py, byte for byte: a 32-byte little-endian header
 * (crc, length, topic_id, kind, batch_left, seq, durable), the payload, zero padding to 8.
 * The crc is zlib's CRC-32 of bytes [4, 32 + length) seeded with the segment salt.
 * Loops over records live here so Python pays one call per batch, not one per record.
 *
 * The GIL: cffi's wrappers release it around every call, which costs little alone but hands
 * the interpreter to another thread in the middle of an append (the caller holds the append
 * lock), and the convoy that follows halves the throughput of four appending threads. So the
 * wrappers here keep it (the two macros below, which the generated wrappers use), and the
 * functions let go of it themselves only around work long enough to be worth it: madvise,
 * and copying or checksumming a large payload.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <zlib.h>

#include "record.h"

#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS {
#define Py_END_ALLOW_THREADS }

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int walrus_madvise(char *addr, uint64_t len, int advice) {
    /* madvise without the GIL: faulting in or dropping a segment's pages takes milliseconds. */
    PyThreadState *gil = PyEval_SaveThread();
    int err = madvise(addr, (size_t)len, advice) == 0 ? 0 : errno;
    PyEval_RestoreThread(gil);
    return err;
}

int walrus_populate(char *addr, uint64_t len, int writable) {
    /* Fault a mapping's pages in without touching their bytes (Linux >= 5.14). */
    return walrus_madvise(addr, len, writable ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
}

enum { STOP_COUNT = 0, STOP_BUDGET = 1, STOP_DAMAGED = 2, STOP_BUFFER = 3, STOP_SEGMENT = 4 };

uint64_t walrus_encode_entry(char *dst, uint64_t pos, const char *data, uint64_t n,
                             uint32_t tid, uint64_t seq, uint64_t durable, uint32_t salt) {
    return encode_one((unsigned char *)dst, pos, (const unsigned char *)data, n, tid, 0, seq,
                      durable, salt);
}

uint64_t walrus_encode_entries(char *dst_, uint64_t pos, const char *payloads_,
                               const uint64_t *lengths, uint64_t count, uint32_t tid,
                               uint32_t first_left, uint64_t first_seq, uint64_t durable,
                               uint32_t salt, uint64_t lsn_base, uint64_t *out_lsns) {
    unsigned char *dst = (unsigned char *)dst_;
    const unsigned char *payloads = (const unsigned char *)payloads_;
    for (uint64_t i = 0; i < count; i++) {
        out_lsns[i] = lsn_base + pos;
        pos = encode_one(dst, pos, payloads, lengths[i], tid, (uint16_t)(first_left - i),
                         first_seq + i, durable, salt);
        payloads += lengths[i];
    }
    return pos;
}

uint64_t walrus_record_bytes(const char *buf_, uint64_t buflen, const uint64_t *lsns,
                             uint64_t count) {
    const unsigned char *buf = (const unsigned char *)buf_;
    uint64_t total = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t off = lsns[i] & OFFSET_MASK;
        if ((lsns[i] & 7u) || off + HEADER > buflen) continue;  /* damaged: size unknown */
        uint64_t n = get32(buf + off + 4);
        total += (HEADER + n + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
    }
    return total;
}

int64_t walrus_verify_entries(const char *buf_, uint64_t buflen, uint64_t base,
                              const uint64_t *lsns, uint64_t count, uint64_t segment,
                              uint32_t tid, uint64_t first_seq, uint32_t salt, uint64_t budget,
                              int first_free, uint64_t *out_starts, uint64_t *out_ends,
                              int *stop) {
    const unsigned char *buf = (const unsigned char *)buf_;
    uint64_t total = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t lsn = lsns[i];
        if ((lsn >> SEG_SHIFT) != segment) { *stop = STOP_SEGMENT; return (int64_t)i; }
        if (lsn & 7u) { *stop = STOP_DAMAGED; return (int64_t)i; }
        uint64_t off = lsn & OFFSET_MASK;
        if (off < base || off - base + HEADER > buflen) { *stop = STOP_BUFFER; return (int64_t)i; }
        const unsigned char *h = buf + (off - base);
        uint64_t n = get32(h + 4);
        if (n > MAX_ENTRY || get32(h + 8) != tid || get16(h + 12) != KIND_ENTRY
                || get64(h + 16) != first_seq + i) {
            *stop = STOP_DAMAGED; return (int64_t)i;
        }
        if ((i || !first_free) && total + n > budget) { *stop = STOP_BUDGET; return (int64_t)i; }
        if (off - base + HEADER + n > buflen) { *stop = STOP_BUFFER; return (int64_t)i; }
        PyThreadState *gil = n >= BIG ? PyEval_SaveThread() : NULL;
        uint32_t crc = crc_of(h + 4, HEADER - 4 + n, salt);
        if (gil) PyEval_RestoreThread(gil);
        if (crc != get32(h)) {
            *stop = STOP_DAMAGED; return (int64_t)i;
        }
        total += n;
        out_starts[i] = off - base + HEADER;
        out_ends[i] = off - base + HEADER + n;
    }
    *stop = STOP_COUNT;
    return (int64_t)count;
}
