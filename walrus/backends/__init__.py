"""I/O backends: the contract every backend implements, and the built-in ones.

One backend per module (``_mmap``, ``_pwrite``, ``_io_uring``), each behind the same narrow
contract (:class:`Backend` and :class:`File`); plugin authors subclass these.
"""

from ._base import Backend, Buffer, File, create_file, open_file, pread_exact, pwrite_all

__all__ = ["Backend", "Buffer", "File", "create_file", "open_file", "pread_exact", "pwrite_all"]
