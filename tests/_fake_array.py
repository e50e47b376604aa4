"""Run as a script: imports walrus's C hot paths with ``array.array`` replaced by a type of
the same object size as CPython's array whose fields are not where hot.c's ArrayLayout says
(``ob_descr`` holds no pointer), as a patched CPython could have it. The start-up check must
refuse the direct writes (prints ``direct()``), not crash."""

from __future__ import annotations

import array
import ctypes
from typing import Any

WORD = ctypes.sizeof(ctypes.c_void_p)
FIELDS = {"ob_size": 2, "ob_item": 3, "allocated": 4, "ob_descr": 5, "ob_exports": 7}
"""Word offsets in CPython 3.11/3.12's array object (what ArrayLayout reads)."""
ITEMS = (ctypes.c_uint64 * 3)(7, 8, 9)


class PyBuffer(ctypes.Structure):
    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p), ("len", ctypes.c_ssize_t),
                ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int),
                ("ndim", ctypes.c_int), ("format", ctypes.c_char_p),
                ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
                ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p)]


class Slot(ctypes.Structure):
    _fields_ = [("slot", ctypes.c_int), ("pfunc", ctypes.c_void_p)]


class Spec(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("basicsize", ctypes.c_int),
                ("itemsize", ctypes.c_int), ("flags", ctypes.c_uint),
                ("slots", ctypes.POINTER(Slot))]


def word(address: int, name: str) -> ctypes.c_ssize_t:
    return ctypes.c_ssize_t.from_address(address + WORD * FIELDS[name])


@ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(PyBuffer), ctypes.c_int)  # type: ignore[untyped-decorator]
def getbuffer(exporter: int, view: Any, flags: int) -> int:
    """The buffer API tells the truth: three 'Q' items 7, 8, 9, and one buffer more lent."""
    v = view.contents
    v.buf, v.obj, v.len, v.itemsize = ctypes.addressof(ITEMS), exporter, 24, 8
    v.readonly, v.ndim, v.format = 0, 1, b"Q"
    v.shape = v.strides = v.suboffsets = v.internal = None
    ctypes.pythonapi.Py_IncRef(ctypes.c_void_p(exporter))
    word(exporter, "ob_exports").value += 1
    return 0


@ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(PyBuffer))  # type: ignore[untyped-decorator]
def releasebuffer(exporter: int, view: Any) -> None:
    word(exporter, "ob_exports").value -= 1


SLOTS = (Slot * 3)(Slot(1, ctypes.cast(getbuffer, ctypes.c_void_p)),  # Py_bf_getbuffer
                   Slot(2, ctypes.cast(releasebuffer, ctypes.c_void_p)),  # Py_bf_releasebuffer
                   Slot(0, None))
SPEC = Spec(b"fake.array", 8 * WORD, 0, (1 << 18) | (1 << 10), SLOTS)  # default, subclassable
ctypes.pythonapi.PyType_FromSpec.restype = ctypes.py_object
Base = ctypes.pythonapi.PyType_FromSpec(ctypes.byref(SPEC))


class FakeArray(Base):  # type: ignore[misc,valid-type]
    __slots__ = ()

    def __new__(cls, code: str, items: object = ()) -> FakeArray:
        obj: FakeArray = Base.__new__(cls)
        word(id(obj), "ob_size").value = 3
        word(id(obj), "ob_item").value = ctypes.addressof(ITEMS)
        word(id(obj), "allocated").value = 3
        word(id(obj), "ob_descr").value = 0x10  # followed, it would crash
        return obj

    def append(self, x: int) -> None:
        pass


if __name__ == "__main__":
    assert FakeArray.__basicsize__ == 8 * WORD
    array.array = FakeArray  # type: ignore[misc]
    from walrus._native import _hot  # type: ignore[attr-defined]

    print(_hot.direct())
