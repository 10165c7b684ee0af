"""The Celery application; tasks live in nodes.tasks. ``app.Worker`` is ``Worker`` below."""
from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from celery import Celery, platforms
from celery.apps.worker import Worker as CeleryWorker
from celery.apps.worker import install_worker_term_handler
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "extadmin.settings")

# filesystem:// (the embedded default) writes each message whole before a consumer can see it.
TRANSPORT_ALIASES["filesystem"] = "extadmin.filesystem_broker:Transport"


STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP})
SignalHandler = Callable[[int, FrameType | None], Any]


class _OneStopAtATime:
    """The worker's stop handlers run one at a time, and none inside another. A handler runs in the
    main thread between two of its steps, so a second signal (Ctrl-C's SIGINT to the whole group,
    then the supervisor's SIGTERM) can land inside the first one's handler; Celery's handler takes a
    lock to dispatch ``worker_shutting_down``, and the second, waiting in the same thread for the lock
    the first holds, waited for ever (until the supervisor's SIGKILL, 20 s later). A signal that lands
    while another is handled is handled right after it, by the handler installed for it by then (the
    first SIGINT installs the cold shutdown for the next one)."""

    def __init__(self) -> None:
        self.running = False
        self.pending: list[int] = []

    def run(self, handler: SignalHandler, signum: int, frame: FrameType | None) -> None:
        if self.running:
            self.pending.append(signum)
            return
        self.running = True
        try:
            handler(signum, frame)
            while self.pending:
                later = self.pending.pop(0)
                current = signal.getsignal(later)
                if isinstance(current, _OneAtATime):
                    current.handler(later, frame)
                elif current == signal.SIG_DFL:  # as if it had landed just after: its default action
                    signal.raise_signal(later)
        finally:
            self.running = False


_stops = _OneStopAtATime()  # one per process, as its signal handlers are


@dataclass(frozen=True)
class _OneAtATime:
    handler: SignalHandler

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        _stops.run(self.handler, signum, frame)


class _OneStopAtATimeSignals(platforms.Signals):
    """``celery.platforms.signals`` in a worker's process: every stop handler Celery installs, when
    the worker starts and later (from inside a handler, as the first SIGINT does), goes through
    ``_OneStopAtATime``."""

    def __setitem__(self, name: Any, handler: Any) -> None:
        if callable(handler) and not isinstance(handler, _OneAtATime) and self.supported(name) \
                and self.signum(name) in STOP_SIGNALS:
            handler = _OneAtATime(handler)
        super().__setitem__(name, handler)


class Worker(CeleryWorker):
    """Celery's worker as extadmin's processes run it (the node agents, the webhooks worker):
    - a hangup stops it as SIGTERM does. Celery's own answer to SIGHUP, for a worker whose output is
      not a terminal, is to stop and exec itself again: when the terminal that started scripts/run
      closed, every agent and the webhooks worker came back as orphans that nothing supervised;
    - its stop handlers run one at a time (``_OneStopAtATime``)."""

    def install_platform_tweaks(self, worker: Any) -> None:
        # Celery installs and re-installs its handlers through this one object, wherever it is named.
        platforms.signals.__class__ = _OneStopAtATimeSignals
        super().install_platform_tweaks(worker)
        install_worker_term_handler(worker, sig="SIGHUP")


app = Celery("extadmin")
app.Worker = app.subclass_with_self(Worker)  # type: ignore[method-assign]
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
