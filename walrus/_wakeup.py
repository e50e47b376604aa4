"""Waking a topic's waiting readers once an append is done, without making it look failed.

The rule (``Log.append`` and ``Log.append_batch`` follow it):

1. An append is done when its bookkeeping stores end, under the append lock: from then on
   its entries exist and readers see them. The wake-up runs after the lock is released (no
   waiter's lock is taken under the append lock, and other writers do not wait for it), and
   before the append returns, so a waiter is woken for every visible entry.
2. Nothing raised during the wake-up may be mistaken for a failed append (a caller that
   retries a failed append would write the entry twice):

   - an ``Exception`` from a waker (a bug, or an event loop closed under an asyncio waiter)
     is logged; the append returns its offset. Every other waker is still called (see
     ``Waits.wake_name``).
   - an interrupt (``KeyboardInterrupt`` from Ctrl-C, or whatever a signal handler of the
     program raises) is not swallowed, and cannot be held back until the append has
     returned: CPython raises a pending interrupt in the caller's call instruction, before
     the returned value is stored anywhere. So it propagates carrying the outcome: a note
     naming the topic and the first offset appended, and the attribute ``walrus_appended``
     (``(topic, first offset)``). A caller that retries appends on an exception checks that
     attribute first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._topics import Topic

log = logging.getLogger("walrus")


def wake_after_append(hook: Callable[[Topic], None], t: Topic, offset: int) -> None:
    """Call ``hook(t)`` (the log's waiting-reads hook) after an append of ``t`` whose first
    entry is ``offset``, following the module's rule."""
    try:
        hook(t)
    except Exception:
        log.exception("waking the readers waiting for topic %r failed (the append of offset "
                      "%d is done)", t.name, offset)
    except BaseException as exc:
        exc.add_note(f"walrus: the append to topic {t.name!r} was done before this was "
                     f"raised (first offset {offset}); do not append it again")
        exc.walrus_appended = (t.name, offset)  # type: ignore[attr-defined]
        raise
