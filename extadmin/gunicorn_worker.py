"""gunicorn's threaded worker: it stops once however many quit signals reach it, and its live
streams end when it is asked to stop.

``gunicorn --worker-class extadmin.gunicorn_worker.ThreadWorker`` (scripts/run, the Dockerfile).

- A Ctrl-C reaches the whole foreground process group: each worker gets the terminal's SIGINT and,
  a moment later, the SIGQUIT its master sends on that same SIGINT. gunicorn's ``handle_quit`` shuts
  its thread pool down under the pool's lock; a second quit signal that lands while the first handler
  holds that lock runs the handler again in the same thread, which waits on the lock for ever (Python
  issue 121649). The master then killed the worker only at ``--graceful-timeout``: scripts/run took
  20 s to stop. The first quit signal is the one handled; later ones find the worker stopping.
- A live page's event stream (``extadmin.web.live``) holds a thread until its bound (55 s): the
  worker waited for it on every stop, until ``--graceful-timeout``. On SIGTERM (a graceful stop) or
  a quit signal every stream of the process ends at once (``nodes.changes.close_listeners``); the
  page reconnects to the next server, or polls. Requests that are not streams finish as before.
"""
from __future__ import annotations

import sys
from types import FrameType

from gunicorn.workers.gthread import ThreadWorker as GunicornThreadWorker


class ThreadWorker(GunicornThreadWorker):
    _quitting = False
    _streams_closed = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._close_streams()
        super().handle_exit(sig, frame)

    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        if self._quitting:
            return
        self._quitting = True
        self._close_streams()
        super().handle_quit(sig, frame)

    def _close_streams(self) -> None:
        if self._streams_closed:
            return
        self._streams_closed = True
        changes = sys.modules.get("nodes.changes")  # not imported yet: no stream ever ran here
        if changes is not None:
            changes.close_listeners()
