/* walrus._native._uring: io_uring operations for the io_uring backend.
 *
 * Every function here is one cffi call that does a whole operation: prepare its SQEs,
 * submit them, reap every completion and retry short transfers. Python never loops per
 * record or per completion (each cffi call costs ~150 ns).
 *
 * Thread safety: a pool hands each call a ring of its own (created lazily, at most
 * max_rings), so a reader never waits behind another thread's fsync. cffi releases the
 * GIL during these calls. Results are 0 / a byte count, or -errno.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <liburing.h>

#define WR_MAX_RINGS 16
#define WR_CHUNK (1u << 30)     /* largest transfer one SQE asks for */
#define WR_IOV_MAX 1024         /* UIO_MAXIOV: iovecs per writev SQE */

struct wr_pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned depth;
    int max_rings;
    int nrings;                 /* rings created */
    int nfree;                  /* rings in free[] */
    int closed;
    struct io_uring *free[WR_MAX_RINGS];
    struct io_uring *all[WR_MAX_RINGS];
};

static int ring_init(struct io_uring *ring, unsigned depth)
{
#ifdef IORING_SETUP_COOP_TASKRUN
    /* No IPI to interrupt us for task work: we always wait for our own completions. */
    if (io_uring_queue_init(depth, ring, IORING_SETUP_COOP_TASKRUN) == 0)
        return 0;
#endif
    return io_uring_queue_init(depth, ring, 0);
}

struct wr_pool *wr_pool_new(unsigned depth, int max_rings)
{
    struct wr_pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->depth = depth ? depth : 64;
    p->max_rings = max_rings < 1 ? 1 : (max_rings > WR_MAX_RINGS ? WR_MAX_RINGS : max_rings);
    return p;
}

/* Take a ring for one operation; NULL with *err set when closed or a ring cannot be made. */
static struct io_uring *acquire(struct wr_pool *p, int *err)
{
    struct io_uring *ring = NULL;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (p->closed) {
            *err = -EBADF;
            break;
        }
        if (p->nfree > 0) {
            ring = p->free[--p->nfree];
            break;
        }
        if (p->nrings < p->max_rings) {
            struct io_uring *fresh = calloc(1, sizeof(*fresh));
            int ret = fresh ? ring_init(fresh, p->depth) : -ENOMEM;
            if (ret < 0) {
                free(fresh);
                *err = ret;
                break;
            }
            ring = p->all[p->nrings++] = fresh;
            break;
        }
        pthread_cond_wait(&p->cond, &p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return ring;
}

static void release(struct wr_pool *p, struct io_uring *ring)
{
    pthread_mutex_lock(&p->lock);
    p->free[p->nfree++] = ring;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

/* Refuse new operations, wait for running ones, and tear the rings down. Idempotent. */
void wr_pool_close(struct wr_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->closed = 1;
    while (p->nfree < p->nrings)
        pthread_cond_wait(&p->cond, &p->lock);
    for (int i = 0; i < p->nrings; i++) {
        io_uring_queue_exit(p->all[i]);
        free(p->all[i]);
        p->all[i] = NULL;
    }
    p->nrings = p->nfree = 0;
    pthread_mutex_unlock(&p->lock);
}

void wr_pool_free(struct wr_pool *p)
{
    if (p == NULL)
        return;
    wr_pool_close(p);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* Create the first ring now, so that a backend that cannot get one fails when it is made. */
int wr_pool_prepare(struct wr_pool *p)
{
    int err = 0;
    struct io_uring *ring = acquire(p, &err);
    if (ring != NULL)
        release(p, ring);
    return err;
}

int wr_pool_rings(struct wr_pool *p)
{
    pthread_mutex_lock(&p->lock);
    int n = p->nrings;
    pthread_mutex_unlock(&p->lock);
    return n;
}

static struct io_uring_sqe *get_sqe(struct io_uring *ring)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (sqe == NULL) {              /* full: hand what is queued to the kernel first */
        io_uring_submit(ring);
        sqe = io_uring_get_sqe(ring);
    }
    return sqe;
}

/* Submit what is queued and reap `n` completions into res[user_data]. */
static int complete(struct io_uring *ring, unsigned n, int32_t *res)
{
    int ret = io_uring_submit_and_wait(ring, n);
    if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
        return ret;
    while (io_uring_sq_ready(ring) > 0) {
        ret = io_uring_submit(ring);
        if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
            return ret;
    }
    for (unsigned done = 0; done < n; done++) {
        struct io_uring_cqe *cqe;
        do {
            ret = io_uring_wait_cqe(ring, &cqe);
        } while (ret == -EINTR);
        if (ret < 0)
            return ret;
        res[cqe->user_data] = cqe->res;
        io_uring_cqe_seen(ring, cqe);
    }
    return 0;
}

static int retryable(int32_t res)
{
    return res == -EINTR || res == -EAGAIN;
}

/* Write iov[0..n) fully at off; with `sync`, an fdatasync linked behind the first attempt. */
static int write_iov(struct io_uring *ring, int fd, uint64_t off, struct iovec *iov, int n,
                     int sync)
{
    int synced = !sync;
    while (n > 0) {
        int count = n < WR_IOV_MAX ? n : WR_IOV_MAX;
        uint64_t want = 0;
        for (int i = 0; i < count; i++)
            want += iov[i].iov_len;
        struct io_uring_sqe *sqe = get_sqe(ring);
        if (sqe == NULL)
            return -EBUSY;
        if (count == 1)
            io_uring_prep_write(sqe, fd, iov[0].iov_base,
                                iov[0].iov_len < WR_CHUNK ? iov[0].iov_len : WR_CHUNK, off);
        else
            io_uring_prep_writev(sqe, fd, iov, count, off);
        sqe->user_data = 0;
        unsigned ops = 1;
        int linked = !synced && count == n && want < WR_CHUNK;
        if (linked) {               /* the last write of the call carries the sync */
            sqe->flags |= IOSQE_IO_LINK;
            struct io_uring_sqe *fs = get_sqe(ring);
            if (fs == NULL)
                return -EBUSY;
            io_uring_prep_fsync(fs, fd, IORING_FSYNC_DATASYNC);
            fs->user_data = 1;
            ops = 2;
        }
        int32_t res[2] = {0, 0};
        int ret = complete(ring, ops, res);
        if (ret < 0)
            return ret;
        if (retryable(res[0]))
            continue;
        if (res[0] < 0)
            return res[0];
        if (res[0] == 0 && want > 0)
            return -EIO;            /* no progress: never spin */
        if (linked && (uint64_t)res[0] == want) {
            if (res[1] < 0 && res[1] != -ECANCELED && !retryable(res[1]))
                return res[1];
            synced = res[1] == 0;
        }
        off += (uint64_t)res[0];
        uint64_t left = (uint64_t)res[0];
        while (n > 0 && left >= iov[0].iov_len) {   /* drop what was written */
            left -= iov[0].iov_len;
            iov++;
            n--;
        }
        if (n > 0 && left > 0) {
            iov[0].iov_base = (char *)iov[0].iov_base + left;
            iov[0].iov_len -= left;
        }
    }
    if (!synced) {
        struct io_uring_sqe *fs = get_sqe(ring);
        if (fs == NULL)
            return -EBUSY;
        for (;;) {
            io_uring_prep_fsync(fs, fd, IORING_FSYNC_DATASYNC);
            fs->user_data = 0;
            int32_t res = 0;
            int ret = complete(ring, 1, &res);
            if (ret < 0)
                return ret;
            if (!retryable(res))
                return res;
            fs = get_sqe(ring);
            if (fs == NULL)
                return -EBUSY;
        }
    }
    return 0;
}

int wr_writev(struct wr_pool *p, int fd, uint64_t off, const struct iovec *iov, int n, int sync)
{
    int err = 0;
    struct iovec *copy = malloc(sizeof(*copy) * (size_t)(n > 0 ? n : 1));
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, iov, sizeof(*copy) * (size_t)n);
    struct io_uring *ring = acquire(p, &err);
    if (ring != NULL) {
        err = write_iov(ring, fd, off, copy, n, sync);
        release(p, ring);
    }
    free(copy);
    return err;
}

/* The common cases without an iovec array built in Python: one buffer, or header + payload. */
int wr_write2(struct wr_pool *p, int fd, uint64_t off, const char *a, size_t alen,
              const char *b, size_t blen, int sync)
{
    struct iovec iov[2] = {{(void *)a, alen}, {(void *)b, blen}};
    int err = 0;
    struct io_uring *ring = acquire(p, &err);
    if (ring != NULL) {
        err = write_iov(ring, fd, off, iov, blen ? 2 : 1, sync);
        release(p, ring);
    }
    return err;
}

/* Read up to len bytes at off into buf, short only at end of file; returns the count. */
static int64_t read_full(struct io_uring *ring, int fd, uint64_t off, char *buf, uint64_t len)
{
    uint64_t got = 0;
    while (got < len) {
        struct io_uring_sqe *sqe = get_sqe(ring);
        if (sqe == NULL)
            return -EBUSY;
        uint64_t want = len - got < WR_CHUNK ? len - got : WR_CHUNK;
        io_uring_prep_read(sqe, fd, buf + got, (unsigned)want, off + got);
        sqe->user_data = 0;
        int32_t res = 0;
        int ret = complete(ring, 1, &res);
        if (ret < 0)
            return ret;
        if (retryable(res))
            continue;
        if (res < 0)
            return res;
        if (res == 0)
            break;                  /* end of file */
        got += (uint64_t)res;
    }
    return (int64_t)got;
}

int64_t wr_read(struct wr_pool *p, int fd, uint64_t off, char *buf, uint64_t len)
{
    int err = 0;
    struct io_uring *ring = acquire(p, &err);
    if (ring == NULL)
        return err;
    int64_t got = read_full(ring, fd, off, buf, len);
    release(p, ring);
    return got;
}

/* n reads submitted together: request i reads lens[i] bytes of fds[i] at offs[i] into dst,
 * right after request i-1's bytes. got[i] is its byte count (short only at end of file).
 * Returns 0, or the first -errno (got[] then says which requests failed). */
int wr_read_many(struct wr_pool *p, const int *fds, const uint64_t *offs, const uint32_t *lens,
                 int n, char *dst, int64_t *got)
{
    int err = 0;
    struct io_uring *ring = acquire(p, &err);
    if (ring == NULL)
        return err;
    int32_t *res = malloc(sizeof(*res) * (size_t)(p->depth));
    char **bufs = malloc(sizeof(*bufs) * (size_t)(n > 0 ? n : 1));
    if (res == NULL || bufs == NULL) {
        err = -ENOMEM;
        goto out;
    }
    char *at = dst;
    for (int i = 0; i < n; i++) {
        bufs[i] = at;
        at += lens[i];
    }
    for (int start = 0; start < n; start += (int)p->depth) {   /* rounds of one ring's depth */
        int count = n - start < (int)p->depth ? n - start : (int)p->depth;
        for (int i = 0; i < count; i++) {
            int k = start + i;
            struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
            io_uring_prep_read(sqe, fds[k], bufs[k], lens[k], offs[k]);
            sqe->user_data = (uint64_t)i;
        }
        int ret = complete(ring, (unsigned)count, res);
        if (ret < 0) {
            err = ret;
            goto out;
        }
        for (int i = 0; i < count; i++) {
            int k = start + i;
            int64_t r = res[i];
            if ((r >= 0 && r < lens[k]) || retryable((int32_t)r)) {  /* finish it alone */
                uint64_t have = r > 0 ? (uint64_t)r : 0;
                int64_t more = read_full(ring, fds[k], offs[k] + have, bufs[k] + have,
                                         lens[k] - have);
                r = more < 0 ? more : (int64_t)have + more;
            }
            got[k] = r;
            if (r < 0 && err == 0)
                err = (int)r;
        }
    }
out:
    free(bufs);
    free(res);
    release(p, ring);
    return err;
}

/* fdatasync (or fsync) every fd at once; waits for all. Returns 0 or the first -errno, and
 * each fd's own result in res[]. */
int wr_sync_many(struct wr_pool *p, const int *fds, int n, int datasync, int32_t *res)
{
    int err = 0;
    struct io_uring *ring = acquire(p, &err);
    if (ring == NULL)
        return err;
    unsigned flags = datasync ? IORING_FSYNC_DATASYNC : 0;
    for (int start = 0; start < n && err == 0; start += (int)p->depth) {
        int count = n - start < (int)p->depth ? n - start : (int)p->depth;
        for (int i = 0; i < count; i++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
            io_uring_prep_fsync(sqe, fds[start + i], flags);
            sqe->user_data = (uint64_t)i;
        }
        int ret = complete(ring, (unsigned)count, res + start);
        if (ret < 0) {
            err = ret;
            break;
        }
        for (int i = start; i < start + count; i++) {
            while (retryable(res[i])) {
                struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
                io_uring_prep_fsync(sqe, fds[i], flags);
                sqe->user_data = 0;
                ret = complete(ring, 1, res + i);
                if (ret < 0) {
                    res[i] = ret;
                    break;
                }
            }
            if (res[i] < 0 && err == 0)
                err = res[i];
        }
    }
    release(p, ring);
    return err;
}

/* Can this process use io_uring? Returns 0, or -errno from ring setup or from a NOP round
 * trip. *missing gets bit i set for each opcode ops[i] the kernel does not support; -ENOSYS
 * with *missing == ~0u means the kernel cannot even say (no opcode probe, before 5.6). */
int wr_probe(const int *ops, int nops, unsigned *missing)
{
    struct io_uring ring;
    *missing = 0;
    int ret = io_uring_queue_init(4, &ring, 0);
    if (ret < 0)
        return ret;
    struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
    if (probe == NULL) {
        *missing = ~0u;
        io_uring_queue_exit(&ring);
        return -ENOSYS;
    }
    for (int i = 0; i < nops && i < 32; i++)
        if (!io_uring_opcode_supported(probe, ops[i]))
            *missing |= 1u << i;
    io_uring_free_probe(probe);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_nop(sqe);
    sqe->user_data = 0;
    int32_t res = 0;
    ret = complete(&ring, 1, &res);
    io_uring_queue_exit(&ring);
    return ret < 0 ? ret : res;
}
