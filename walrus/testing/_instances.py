"""Opening instances for a test and closing every one afterwards (the kit's and the project's)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._errors import WalrusError
from .._walrus import Walrus

WalrusFactory = Callable[..., Walrus]
"""``factory(path=None, **kwargs)``: a ``Walrus`` on the test's backend."""


@contextmanager
def instances(directory: Path, backend: str) -> Iterator[WalrusFactory]:
    """Instances on ``backend`` (in ``directory`` unless given a path), all closed at the end."""
    opened: list[Walrus] = []

    def factory(path: Path | str | None = None, **kwargs: Any) -> Walrus:
        kwargs.setdefault("backend", backend)
        wal = Walrus(data_dir=path if path is not None else directory, **kwargs)
        opened.append(wal)
        return wal

    yield factory
    for wal in opened:
        try:
            wal.close()
        except WalrusError:
            pass
