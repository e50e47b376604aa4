"""cffi build script of ``walrus._native._uring`` (out-of-line API mode, against liburing).

``setup.py`` lists it in ``cffi_modules``; run directly it builds the module in place. The C
source is ``uring.c`` beside this file. liburing is linked statically when ``liburing.a`` is
found, so the built extension needs no liburing at run time.
"""

from __future__ import annotations

import os
import sys
import sysconfig

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE = "walrus._native._uring"

CDEF = """
struct iovec { void *iov_base; size_t iov_len; };
struct wr_pool;
struct wr_pool *wr_pool_new(unsigned depth, int max_rings);
void wr_pool_close(struct wr_pool *p);
void wr_pool_free(struct wr_pool *p);
int wr_pool_prepare(struct wr_pool *p);
int wr_pool_rings(struct wr_pool *p);
int64_t wr_pool_operations(struct wr_pool *p);
int wr_writev(struct wr_pool *p, int fd, uint64_t off, const struct iovec *iov, int n);
int wr_write2(struct wr_pool *p, int fd, uint64_t off, const char *a, size_t alen,
              const char *b, size_t blen);
int64_t wr_read(struct wr_pool *p, int fd, uint64_t off, char *buf, uint64_t len);
int wr_sync_many(struct wr_pool *p, const int *fds, int n, int32_t *res);
int wr_probe(const int *ops, int nops, unsigned *missing);

#define WR_DIRECT_MAX ...
#define IORING_OP_NOP ...
#define IORING_OP_WRITEV ...
#define IORING_OP_FSYNC ...
#define IORING_OP_READ ...
#define IORING_OP_WRITE ...
"""


def static_liburing() -> str | None:
    """The path of ``liburing.a`` if this system has one."""
    dirs = [os.environ.get("WALRUS_URING_LIBDIR", "")]
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch:
        dirs += [f"/usr/lib/{multiarch}", f"/usr/local/lib/{multiarch}"]
    dirs += ["/usr/local/lib", "/usr/lib64", "/usr/lib"]
    for directory in filter(None, dirs):
        path = os.path.join(directory, "liburing.a")
        if os.path.isfile(path):
            return path
    return None


def make_builder() -> FFI:
    builder = FFI()
    builder.cdef(CDEF)
    with open(os.path.join(HERE, "uring.c"), encoding="utf-8") as f:
        source = f.read()
    static = static_liburing()
    builder.set_source(
        MODULE,
        source,
        extra_objects=[static] if static else [],
        libraries=[] if static else ["uring"],
        extra_compile_args=["-std=gnu11"],
    )
    return builder


ffibuilder = make_builder()

if __name__ == "__main__":  # pragma: no cover - manual in-place build
    ffibuilder.compile(tmpdir=os.path.dirname(os.path.dirname(HERE)), verbose=True)
    sys.exit(0)
