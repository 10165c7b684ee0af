"""The Celery application; tasks live in nodes.tasks. ``app.Worker`` is ``Worker`` below."""
from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.apps.worker import Worker as CeleryWorker
from celery.apps.worker import install_worker_term_handler
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "extadmin.settings")

# filesystem:// (the embedded default) writes each message whole before a consumer can see it.
TRANSPORT_ALIASES["filesystem"] = "extadmin.filesystem_broker:Transport"


class Worker(CeleryWorker):
    """Celery's worker as extadmin's processes run it (the node agents, the webhooks worker): a
    hangup stops it as SIGTERM does. Celery's own answer to SIGHUP, for a worker whose output is not
    a terminal, is to stop and exec itself again: when the terminal that started scripts/run closed,
    every agent and the webhooks worker came back as orphans that nothing supervised or stopped."""

    def install_platform_tweaks(self, worker: Any) -> None:
        super().install_platform_tweaks(worker)
        install_worker_term_handler(worker, sig="SIGHUP")


app = Celery("extadmin")
app.Worker = app.subclass_with_self(Worker)  # type: ignore[method-assign]
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
