"""``extadmin.celery.Worker`` (the worker of every agent and of the webhooks worker) in a real process,
with real signals.

A Ctrl-C gives each worker two stop signals: the terminal's SIGINT, then its supervisor's SIGTERM.
Celery's stop handler takes a lock (to dispatch ``worker_shutting_down``), and a handler runs in the
main thread between two of its steps: when the second signal landed while the first handler held
that lock, the second waited for it for ever, in the same thread, until the supervisor's SIGKILL 20 s
later (``manage.py run_worker`` sent SIGINT, SIGTERM, SIGTERM at once hung 3 times in 50). Here the
second signal is sent from inside that lock (a profile hook on the function that runs under it), so
it lands there every time.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import ROOT, wait_for

pytestmark = pytest.mark.dbless  # the embedded broker in its own folder, no database: .ci/run runs it once

WORKER = """
import os, signal, sys
import django
django.setup()
from celery.signals import worker_ready, worker_shutting_down
from extadmin.celery import app

fired = []

def second_signal_inside_the_lock(frame, event, arg):
    # Celery's Signal._clear_dead_receivers runs under the signal's lock: the SIGTERM lands there.
    if event == "call" and frame.f_code.co_name == "_clear_dead_receivers" and not fired \\
            and frame.f_locals.get("self") is worker_shutting_down:
        fired.append(True)
        os.kill(os.getpid(), signal.SIGTERM)

@worker_shutting_down.connect
def stopping(**kwargs):  # as the agent's and the webhooks worker's receivers: with none, no lock is taken
    pass

@worker_ready.connect
def arm(**kwargs):
    sys.setprofile(second_signal_inside_the_lock)
    print("armed", flush=True)

worker = app.Worker(hostname="stops@test", queues=["stops"], pool="solo", concurrency=1, loglevel="INFO",
                    without_gossip=True, without_mingle=True, without_heartbeat=True)
worker.start()
sys.setprofile(None)
print(f"stopped (second signal sent: {bool(fired)})", flush=True)
sys.exit(int(worker.exitcode or 0))
"""


def test_a_second_stop_signal_inside_the_first_ones_handler_is_handled_after_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(DJANGO_SETTINGS_MODULE="extadmin.settings", EXTADMIN_VAR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    log = tmp_path / "worker.log"
    proc = subprocess.Popen([sys.executable, "-c", WORKER], cwd=ROOT, env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "armed" in log.read_text() or proc.poll() is not None, timeout=60, what="the worker")
        assert proc.poll() is None, log.read_text()
        asked = time.monotonic()
        proc.send_signal(signal.SIGINT)  # the terminal's Ctrl-C
        try:
            status = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            output = log.read_text()[-3000:]
            raise AssertionError(f"the worker still ran 20 s after SIGINT and SIGTERM:\n{output}") from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = log.read_text()
    assert "stopped (second signal sent: True)" in output, output
    assert status in (0, 1), output  # its own exit, not killed by a signal
    assert time.monotonic() - asked < 20
    # Both were handled: the SIGTERM after the SIGINT, not lost.
    assert output.count("worker: Warm shutdown (MainProcess)") == 2, output
