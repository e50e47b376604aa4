/* walrus._native._uring: io_uring operations for the io_uring backend.
 *
 * Every function here is one cffi call that does a whole operation: prepare its SQEs,
 * submit them, reap every completion and retry short transfers. Python never loops per
 * record or per completion (each cffi call costs ~150 ns).
 *
 * Thread safety: a pool hands each call a ring of its own (created lazily, at most
 * max_rings), so a reader never waits behind another thread's fsync. cffi releases the
 * GIL during these calls. Results are 0 / a byte count, or -errno.
 *
 * A single small write or read (a record, a header and its payload, a cursor's slot) is one
 * plain pwritev/pread instead: the ring has nothing to overlap in it, and on ext4 a buffered
 * write submitted through a ring is handed to a kernel worker, which costs several times the
 * system call (the Rust original does the same: single appends through pwrite, batches
 * through the ring). Such a call still refuses to run on a closed pool, as a ring call does.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <liburing.h>

#define WR_MAX_RINGS 16
#define WR_CHUNK (1u << 30)     /* largest transfer one SQE asks for */
#define WR_IOV_MAX 1024         /* UIO_MAXIOV: iovecs per writev SQE */
#define WR_DIRECT_MAX (64u << 10) /* single transfers up to this go by plain system call */

struct wr_ring {
    struct io_uring ring;
    int broken;                 /* io_uring_enter failed: completions may be outstanding */
};

struct wr_pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned depth;
    int max_rings;
    int nrings;                 /* rings in all[] */
    int nfree;                  /* rings in free[] */
    int closed;
    int64_t operations;         /* rings handed out so far: what went through a ring */
    struct wr_ring *free[WR_MAX_RINGS];
    struct wr_ring *all[WR_MAX_RINGS];
};

static int ring_init(struct wr_ring *r, unsigned depth)
{
    r->broken = 0;
#ifdef IORING_SETUP_COOP_TASKRUN
    /* No IPI to interrupt us for task work: we always wait for our own completions. */
    if (io_uring_queue_init(depth, &r->ring, IORING_SETUP_COOP_TASKRUN) == 0)
        return 0;
#endif
    return io_uring_queue_init(depth, &r->ring, 0);
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
static struct wr_ring *acquire(struct wr_pool *p, int *err)
{
    struct wr_ring *r = NULL;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (p->closed) {
            *err = -EBADF;
            break;
        }
        if (p->nfree > 0) {
            r = p->free[--p->nfree];
            p->operations++;
            break;
        }
        if (p->nrings < p->max_rings) {
            struct wr_ring *fresh = calloc(1, sizeof(*fresh));
            int ret = fresh ? ring_init(fresh, p->depth) : -ENOMEM;
            if (ret < 0) {
                free(fresh);
                *err = ret;
                break;
            }
            r = p->all[p->nrings++] = fresh;
            p->operations++;
            break;
        }
        pthread_cond_wait(&p->cond, &p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return r;
}

/* Hand a ring back and return `result`. A broken ring is torn down instead of reused (its
 * close cancels what is outstanding); the next operation makes a fresh one. */
static int64_t release(struct wr_pool *p, struct wr_ring *r, int64_t result)
{
    pthread_mutex_lock(&p->lock);
    if (r->broken) {
        for (int i = 0; i < p->nrings; i++)
            if (p->all[i] == r)
                p->all[i] = p->all[--p->nrings];
    } else {
        p->free[p->nfree++] = r;
    }
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (r->broken) {
        io_uring_queue_exit(&r->ring);
        free(r);
    }
    return result;
}

/* Refuse new operations, wait for running ones, and tear the rings down. Idempotent. */
void wr_pool_close(struct wr_pool *p)
{
    pthread_mutex_lock(&p->lock);
    __atomic_store_n(&p->closed, 1, __ATOMIC_RELEASE);
    while (p->nfree < p->nrings)
        pthread_cond_wait(&p->cond, &p->lock);
    for (int i = 0; i < p->nrings; i++) {
        io_uring_queue_exit(&p->all[i]->ring);
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
    struct wr_ring *r = acquire(p, &err);
    return r != NULL ? (int)release(p, r, 0) : err;
}

int wr_pool_rings(struct wr_pool *p)
{
    pthread_mutex_lock(&p->lock);
    int n = p->nrings;
    pthread_mutex_unlock(&p->lock);
    return n;
}

int64_t wr_pool_operations(struct wr_pool *p)
{
    pthread_mutex_lock(&p->lock);
    int64_t n = p->operations;
    pthread_mutex_unlock(&p->lock);
    return n;
}

static int retryable(int res)
{
    return res == -EINTR || res == -EAGAIN || res == -EBUSY;
}

/* Submit what is queued and reap `n` completions into res[user_data]. A failure of
 * io_uring_enter itself marks the ring broken (completions may still be outstanding). */
static int complete(struct wr_ring *r, unsigned n, int32_t *res)
{
    struct io_uring *ring = &r->ring;
    int ret = io_uring_submit_and_wait(ring, n);
    while (ret < 0 || io_uring_sq_ready(ring) > 0) {
        if (ret < 0 && !retryable(ret)) {
            r->broken = 1;
            return ret;
        }
        ret = io_uring_submit(ring);
    }
    for (unsigned done = 0; done < n; done++) {
        struct io_uring_cqe *cqe;
        do {
            ret = io_uring_wait_cqe(ring, &cqe);
        } while (ret == -EINTR);
        if (ret < 0) {
            r->broken = 1;
            return ret;
        }
        res[cqe->user_data] = cqe->res;
        io_uring_cqe_seen(ring, cqe);
    }
    return 0;
}

/* Submit one prepared SQE; its result, or io_uring_enter's error (the ring is then broken). */
static int32_t run_one(struct wr_ring *r, struct io_uring_sqe *sqe)
{
    sqe->user_data = 0;
    int32_t res = 0;
    int ret = complete(r, 1, &res);
    return ret < 0 ? ret : res;
}

/* Drop the first `done` bytes written from iov[0..*n): the iovecs still to write. */
static struct iovec *advance_iov(struct iovec *iov, int *n, uint64_t done)
{
    while (*n > 0 && done >= iov[0].iov_len) {
        done -= iov[0].iov_len;
        iov++;
        (*n)--;
    }
    if (*n > 0 && done > 0) {
        iov[0].iov_base = (char *)iov[0].iov_base + done;
        iov[0].iov_len -= done;
    }
    return iov;
}

/* Write iov[0..n) fully at off: one SQE per WR_IOV_MAX buffers, short writes resumed. */
static int write_iov(struct wr_ring *r, int fd, uint64_t off, struct iovec *iov, int n)
{
    while (n > 0) {
        int count = n < WR_IOV_MAX ? n : WR_IOV_MAX;
        uint64_t want = 0;
        for (int i = 0; i < count; i++)
            want += iov[i].iov_len;
        struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
        if (count == 1)
            io_uring_prep_write(sqe, fd, iov[0].iov_base,
                                iov[0].iov_len < WR_CHUNK ? iov[0].iov_len : WR_CHUNK, off);
        else
            io_uring_prep_writev(sqe, fd, iov, count, off);
        int32_t res = run_one(r, sqe);
        if (retryable(res) && !r->broken)
            continue;
        if (res < 0)
            return res;
        if (res == 0 && want > 0)
            return -EIO;            /* no progress: never spin */
        off += (uint64_t)res;
        iov = advance_iov(iov, &n, (uint64_t)res);
    }
    return 0;
}

int wr_writev(struct wr_pool *p, int fd, uint64_t off, const struct iovec *iov, int n)
{
    int err = 0;
    struct iovec *copy = malloc(sizeof(*copy) * (size_t)(n > 0 ? n : 1));
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, iov, sizeof(*copy) * (size_t)(n > 0 ? n : 0));
    struct wr_ring *r = acquire(p, &err);
    if (r != NULL)
        err = (int)release(p, r, write_iov(r, fd, off, copy, n));
    free(copy);
    return err;
}

/* Has wr_pool_close run? Plain system calls check it so that a closed backend refuses
 * every operation alike (the fds belong to the files, not to the pool). */
static int pool_closed(struct wr_pool *p)
{
    return __atomic_load_n(&p->closed, __ATOMIC_ACQUIRE);
}

/* pwritev iov[0..n) fully at off, resuming short writes; 0 or -errno. */
static int pwrite_iov(int fd, uint64_t off, struct iovec *iov, int n)
{
    for (;;) {
        while (n > 0 && iov[0].iov_len == 0) {     /* nothing to write in these */
            iov++;
            n--;
        }
        if (n == 0)
            return 0;
        ssize_t res = pwritev(fd, iov, n, (off_t)off);
        if (res < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (res == 0)
            return -EIO;            /* no progress: never spin */
        off += (uint64_t)res;
        iov = advance_iov(iov, &n, (uint64_t)res);
    }
}

/* The common cases without an iovec array built in Python: one buffer (blen 0), or a record
 * header and its payload. Up to WR_DIRECT_MAX bytes in all: one pwritev, no ring. */
int wr_write2(struct wr_pool *p, int fd, uint64_t off, const char *a, size_t alen,
              const char *b, size_t blen)
{
    struct iovec iov[2] = {{(void *)a, alen}, {(void *)b, blen}};
    int n = blen ? 2 : 1;
    if (alen + blen <= WR_DIRECT_MAX)
        return pool_closed(p) ? -EBADF : pwrite_iov(fd, off, iov, n);
    int err = 0;
    struct wr_ring *r = acquire(p, &err);
    if (r != NULL)
        err = (int)release(p, r, write_iov(r, fd, off, iov, n));
    return err;
}

/* Read up to len bytes at off into buf, short only at end of file; returns the count. */
static int64_t read_full(struct wr_ring *r, int fd, uint64_t off, char *buf, uint64_t len)
{
    uint64_t got = 0;
    while (got < len) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
        uint64_t want = len - got < WR_CHUNK ? len - got : WR_CHUNK;
        io_uring_prep_read(sqe, fd, buf + got, (unsigned)want, off + got);
        int32_t res = run_one(r, sqe);
        if (retryable(res) && !r->broken)
            continue;
        if (res < 0)
            return res;
        if (res == 0)
            break;                  /* end of file */
        got += (uint64_t)res;
    }
    return (int64_t)got;
}

/* pread up to len bytes at off, short only at end of file; the count or -errno. */
static int64_t pread_full(int fd, uint64_t off, char *buf, uint64_t len)
{
    uint64_t got = 0;
    while (got < len) {
        ssize_t res = pread(fd, buf + got, len - got, (off_t)(off + got));
        if (res < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (res == 0)
            break;                  /* end of file */
        got += (uint64_t)res;
    }
    return (int64_t)got;
}

/* Up to WR_DIRECT_MAX bytes: one pread, no ring; larger reads through a ring. */
int64_t wr_read(struct wr_pool *p, int fd, uint64_t off, char *buf, uint64_t len)
{
    if (len <= WR_DIRECT_MAX)
        return pool_closed(p) ? -EBADF : pread_full(fd, off, buf, len);
    int err = 0;
    struct wr_ring *r = acquire(p, &err);
    return r != NULL ? release(p, r, read_full(r, fd, off, buf, len)) : err;
}

/* fdatasync every fd at once (in rounds of the ring's depth) and wait for all. Returns 0 or
 * the first -errno; res[i] is fds[i]'s own result. */
int wr_sync_many(struct wr_pool *p, const int *fds, int n, int32_t *res)
{
    int err = 0;
    struct wr_ring *r = acquire(p, &err);
    if (r == NULL)
        return err;
    for (int start = 0; start < n && err == 0; start += (int)p->depth) {
        int count = n - start < (int)p->depth ? n - start : (int)p->depth;
        for (int i = 0; i < count; i++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
            io_uring_prep_fsync(sqe, fds[start + i], IORING_FSYNC_DATASYNC);
            sqe->user_data = (uint64_t)i;
        }
        err = complete(r, (unsigned)count, res + start);
        for (int i = start; i < start + count && err == 0; i++) {
            while (retryable(res[i]) && err == 0) {
                struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
                io_uring_prep_fsync(sqe, fds[i], IORING_FSYNC_DATASYNC);
                sqe->user_data = 0;
                err = complete(r, 1, res + i);
            }
        }
        for (int i = start; i < start + count && err == 0; i++)
            if (res[i] < 0)
                err = res[i];
    }
    return (int)release(p, r, err);
}

/* Can this process use io_uring? Returns 0, or -errno from ring setup or from a NOP round
 * trip. *missing gets bit i set for each opcode ops[i] the kernel does not support; -ENOSYS
 * with *missing == ~0u means the kernel cannot even say (no opcode probe, before 5.6). */
int wr_probe(const int *ops, int nops, unsigned *missing)
{
    struct wr_ring r = {0};
    *missing = 0;
    int ret = io_uring_queue_init(4, &r.ring, 0);
    if (ret < 0)
        return ret;
    struct io_uring_probe *probe = io_uring_get_probe_ring(&r.ring);
    if (probe == NULL) {
        *missing = ~0u;
        io_uring_queue_exit(&r.ring);
        return -ENOSYS;
    }
    for (int i = 0; i < nops && i < 32; i++)
        if (!io_uring_opcode_supported(probe, ops[i]))
            *missing |= 1u << i;
    io_uring_free_probe(probe);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r.ring);
    io_uring_prep_nop(sqe);
    sqe->user_data = 0;
    int32_t res = 0;
    ret = complete(&r, 1, &res);
    io_uring_queue_exit(&r.ring);
    return ret < 0 ? ret : res;
}
