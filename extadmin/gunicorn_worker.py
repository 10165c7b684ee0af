"""gunicorn's threaded worker, stopping once however many quit signals reach it.

``gunicorn --worker-class extadmin.gunicorn_worker.ThreadWorker`` (scripts/run, the Dockerfile).
A Ctrl-C reaches the whole foreground process group: each worker gets the terminal's SIGINT and,
a moment later, the SIGQUIT its master sends on that same SIGINT. gunicorn's ``handle_quit`` shuts
its thread pool down under the pool's lock; a second quit signal that lands while the first handler
holds that lock runs the handler again in the same thread, which waits on the lock for ever (Python
issue 121649). The master then killed the worker only at ``--graceful-timeout``: scripts/run took
20 s to stop. The first quit signal is the one handled; later ones find the worker stopping.
"""
from __future__ import annotations

from types import FrameType

from gunicorn.workers.gthread import ThreadWorker as GunicornThreadWorker


class ThreadWorker(GunicornThreadWorker):
    _quitting = False

    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        if self._quitting:
            return
        self._quitting = True
        super().handle_quit(sig, frame)
