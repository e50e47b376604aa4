/* C accelerators for the record codec (walrus._native._speedups).
 *
 * The same format as walrus/_codec.py, byte for byte: a 32-byte little-endian header
 * (crc, length, topic_id, kind, batch_left, seq, durable), the payload, zero padding to 8.
 * The crc is zlib's CRC-32 of bytes [4, 32 + length) seeded with the segment salt.
 * Loops over records live here so Python pays one call per batch, not one per record.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <zlib.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int walrus_populate(char *addr, uint64_t len, int writable) {
    /* Fault a mapping's pages in without touching their bytes (Linux >= 5.14). */
    int advice = writable ? MADV_POPULATE_WRITE : MADV_POPULATE_READ;
    return madvise(addr, (size_t)len, advice) == 0 ? 0 : errno;
}

#define HEADER 32u
#define ALIGN 8u
#define KIND_ENTRY 1u
#define SEG_SHIFT 40
#define OFFSET_MASK ((((uint64_t)1) << SEG_SHIFT) - 1)
#define MAX_ENTRY (((uint64_t)1) << 30)

enum { STOP_COUNT = 0, STOP_BUDGET = 1, STOP_DAMAGED = 2, STOP_BUFFER = 3, STOP_SEGMENT = 4 };

static inline void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void put16(unsigned char *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint16_t get16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static inline uint32_t crc_of(const unsigned char *p, uint64_t n, uint32_t salt) {
    /* zlib's crc32 takes a uInt length: feed large payloads in pieces. */
    uLong crc = salt;
    while (n) {
        uInt part = n > 0x40000000u ? 0x40000000u : (uInt)n;
        crc = crc32(crc, p, part);
        p += part;
        n -= part;
    }
    return (uint32_t)crc;
}

uint64_t walrus_encode_entries(char *dst_, uint64_t pos, const char *payloads_,
                               const uint64_t *lengths, uint64_t count, uint32_t tid,
                               uint32_t first_left, uint64_t first_seq, uint64_t durable,
                               uint32_t salt, uint64_t lsn_base, uint64_t *out_lsns) {
    unsigned char *dst = (unsigned char *)dst_;
    const unsigned char *payloads = (const unsigned char *)payloads_;
    for (uint64_t i = 0; i < count; i++) {
        unsigned char *h = dst + pos;
        uint64_t n = lengths[i];
        put32(h, 0);
        put32(h + 4, (uint32_t)n);
        put32(h + 8, tid);
        put16(h + 12, KIND_ENTRY);
        put16(h + 14, (uint16_t)(first_left - i));
        put64(h + 16, first_seq + i);
        put64(h + 24, durable);
        memcpy(h + HEADER, payloads, n);
        payloads += n;
        uint64_t end = pos + HEADER + n;
        uint64_t padded = (end + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
        memset(dst + end, 0, padded - end);
        put32(h, crc_of(h + 4, HEADER - 4 + n, salt));
        out_lsns[i] = lsn_base + pos;
        pos = padded;
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
                              int first_free, uint32_t *out_lengths, int *stop) {
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
        if (crc_of(h + 4, HEADER - 4 + n, salt) != get32(h)) {
            *stop = STOP_DAMAGED; return (int64_t)i;
        }
        total += n;
        out_lengths[i] = (uint32_t)n;
    }
    *stop = STOP_COUNT;
    return (int64_t)count;
}
