"""The ``walrus`` logger: warnings and errors reach stderr unless the application configures
logging.

No ``NullHandler`` is added, on purpose: what walrus logs at WARNING or above is a problem the
user must hear of (damage found on open, a failed sync, a broken plugin), so with no handler
configured anywhere Python's last-resort handler prints it to stderr. An application that
configures logging gets it through its own handlers instead; INFO and DEBUG stay silent."""

from __future__ import annotations

import logging

from ._config import env

logger = logging.getLogger("walrus")
if env("WALRUS_QUIET") is not None:
    logger.setLevel(logging.WARNING)
