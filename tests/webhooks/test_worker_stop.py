"""How the webhooks worker stops: the same two signals that reach an agent reach it (see
``tests/nodes/test_agent.py``)."""
from __future__ import annotations

import threading

import pytest

from webhooks.worker import WebhookWorker

pytestmark = pytest.mark.dbless  # no database, no broker: .ci/run runs it once


def test_a_second_shutdown_signal_inside_the_first_ones_stop_does_not_hang_the_worker() -> None:
    """Ctrl-C in a terminal sends SIGINT to the whole group, and the worker's supervisor then sends
    SIGTERM: Celery calls the worker's shutdown receiver for each, in the main thread, and the second
    may land while the first is inside ``Event.set()``, holding its lock. The worker waited there for
    ever, until its supervisor killed it 20 s later (found by ``tests/cluster/test_run_command.py::
    test_it_stops_everything_on_ctrl_c`` in CI; a run_worker sent SIGINT, SIGTERM, SIGTERM at once
    hung about one time in 15, inside ``_on_worker_shutdown`` twice)."""
    worker = WebhookWorker(scan_interval=60, concurrency=1)

    def first_handler_interrupted_inside_its_set() -> None:
        worker._on_worker_shutdown(how="warm")  # the first signal: the worker is stopping
        with worker.stop._cond:  # still inside its Event.set(), as when the second lands
            worker._on_worker_shutdown(how="warm")

    second = threading.Thread(target=first_handler_interrupted_inside_its_set, daemon=True)
    second.start()
    second.join(timeout=5)
    assert not second.is_alive(), "the second shutdown signal waited for the lock its own thread holds"
    assert worker.stop.is_set()
