"""An example walrus backend: unbuffered Python file objects (see ``plugin`` for registration)."""

from .backend import FileObjBackend, FileObjFile

__all__ = ["FileObjBackend", "FileObjFile"]
