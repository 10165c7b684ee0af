"""Where a running import is, for whoever asked to hear it (the console's upload page).

The import calls ``phase_reached("unpacking", "Pump")`` as it goes; a door that wants to report it
listens with ``progress_reported(listener)`` around its call. A context variable, so nothing is
passed down through the steps' signatures, and a listener sees only its own import. Nobody
listening costs nothing; a listener that fails never fails the import.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Listener = Callable[[str, str], None]

_listener: ContextVar[Listener | None] = ContextVar("extadmin_progress_listener", default=None)
log = logging.getLogger(__name__)


@contextmanager
def progress_reported(listener: Listener) -> Iterator[None]:
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def phase_reached(phase: str, detail: str = "") -> None:
    listener = _listener.get()
    if listener is None:
        return
    try:
        listener(phase, detail)
    except Exception:  # the report is a courtesy: the import goes on whatever happens to it
        log.warning("could not report the import's phase %s %s", phase, detail, exc_info=True)
