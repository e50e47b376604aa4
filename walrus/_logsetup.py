"""The ``walrus`` logger: silent unless the application configures logging."""

from __future__ import annotations

import logging

from ._config import env

logger = logging.getLogger("walrus")
logger.addHandler(logging.NullHandler())
if env("WALRUS_QUIET") is not None:
    logger.setLevel(logging.WARNING)
