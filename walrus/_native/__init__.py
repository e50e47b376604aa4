"""Optional C extensions, built with cffi by ``setup.py`` (see ``docs/backends.md``).

Each extension has a ``*_build.py`` script here that defines its ``ffibuilder``; nothing in
this package is imported unless the feature using it is, and a missing extension is a
normal, reported state (the feature's probe says "not built").
"""
