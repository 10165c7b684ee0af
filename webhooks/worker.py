"""The webhooks worker (``manage.py run_worker``): the one process that sends webhooks.

Never the console's requests nor an agent's sync: a receiver that hangs holds one thread of this
process for at most ``EXTADMIN_WEBHOOK_TIMEOUT``, and nothing else waits for it. It runs, beside
each other:
  1. the watcher thread: every ``EXTADMIN_WEBHOOK_SCAN_INTERVAL`` seconds it compares the cluster
     with what it last emitted (``webhooks.watch``), and asks for every delivery that is due
     (``webhooks.services.deliveries_due``: retries after their backoff, and whatever the broker lost);
  2. a Celery worker (a pool of threads) consuming only the ``webhooks`` queue, taking no remote
     control commands; each message is one attempt of one delivery (``webhooks.tasks``).
It connects to the database as the console does (not as a node): it writes deliveries and the
watcher's rows, which no node's role may.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field

from celery.signals import worker_shutting_down
from django.db import connection

from extadmin.celery import app
from webhooks.events import WEBHOOKS_QUEUE, deliveries_publish
from webhooks.services import deliveries_due
from webhooks.watch import watch_scan

log = logging.getLogger(__name__)


@dataclass
class WebhookWorker:
    scan_interval: float
    concurrency: int
    stop: threading.Event = field(default_factory=threading.Event)
    stopping: bool = False  # a shutdown signal arrived (set before ``stop``, whose lock a signal must not wait for)

    def run(self) -> int:
        watcher = threading.Thread(target=self._watch_loop, name="webhooks-watch", daemon=True)
        watcher.start()
        try:
            return self._work()
        finally:
            self.stop.set()
            watcher.join(timeout=30)

    def scan_once(self) -> None:
        emitted = watch_scan()
        if emitted:
            log.info("webhook events: %s", ", ".join(emitted))
        deliveries_publish(due=deliveries_due())

    def _watch_loop(self) -> None:
        try:
            while not self.stop.wait(self.scan_interval):
                try:
                    self.scan_once()
                except Exception:  # the database is briefly unreachable: the next scan tries again
                    log.exception("webhook scan failed")
                    connection.close()
        finally:
            connection.close()

    def _work(self) -> int:
        app.conf.broker_connection_max_retries = None  # keep retrying a broker that is down
        # Anyone who can reach the broker could otherwise stop or reconfigure this worker.
        app.conf.worker_enable_remote_control = False
        worker_shutting_down.connect(self._on_worker_shutdown, weak=False)
        worker = app.Worker(
            hostname=f"webhooks@{socket.gethostname()}", queues=[WEBHOOKS_QUEUE], concurrency=self.concurrency,
            pool="threads", loglevel=os.environ.get("EXTADMIN_LOG_LEVEL", "INFO"), without_gossip=True,
            without_mingle=True, without_heartbeat=True, optimization="fair",
        )
        worker.start()
        return int(worker.exitcode or 0)

    def _on_worker_shutdown(self, **kwargs: object) -> None:
        # Celery calls this from its signal handler, in the main thread: a second signal (the
        # group's SIGINT, then the supervisor's SIGTERM) can land while the first is inside
        # ``stop.set()`` and holds its lock, and taking it again there waits for ever.
        if self.stopping:
            return
        self.stopping = True
        self.stop.set()
