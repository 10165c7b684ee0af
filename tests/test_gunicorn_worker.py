"""``extadmin.gunicorn_worker.ThreadWorker`` in a real gunicorn, with real signals.

A Ctrl-C gives each worker two quit signals (the terminal's SIGINT, then its master's SIGQUIT). When
the second landed inside the first's handler, gunicorn's thread worker ran the handler again and
waited for ever on its thread pool's lock, and scripts/run took 20 s to stop (the master's kill at
``--graceful-timeout``). Here the second signal is sent from inside the first handler (gunicorn's
``worker_int`` hook, which the handler calls), so it lands there every time.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from tests.processes import ROOT, free_port, pid_alive, wait_for

pytestmark = pytest.mark.dbless  # no database, no broker: .ci/run runs it once

CONFIG = """
import os, signal
from pathlib import Path

def post_worker_init(worker):
    Path({pids!r}).open("a").write(f"{{os.getpid()}}\\n")

def worker_int(worker):  # gunicorn's handle_quit calls it, inside the signal's handler
    calls = Path({calls!r})
    first = not calls.exists()
    calls.open("a").write(f"{{os.getpid()}}\\n")
    if first:
        os.kill(os.getpid(), signal.SIGQUIT)  # the master's SIGQUIT, arriving while the SIGINT is handled
"""


def app(environ: dict[str, object], start_response: Callable[..., object]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def test_a_second_quit_signal_during_the_first_is_not_handled_again(tmp_path: Path) -> None:
    pids, calls = tmp_path / "pids", tmp_path / "calls"
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(CONFIG.format(pids=str(pids), calls=str(calls)))
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "tests.test_gunicorn_worker:app", "-c", str(config),
         "--bind", f"127.0.0.1:{free_port()}", "--workers", "1", "--threads", "4", "--graceful-timeout", "5",
         "--worker-class", "extadmin.gunicorn_worker.ThreadWorker"],
        cwd=ROOT, stdout=(tmp_path / "gunicorn.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for(lambda: pids.exists() and pids.read_text().strip(), timeout=60, what="gunicorn's worker")
        worker = int(pids.read_text().split()[0])

        os.kill(worker, signal.SIGINT)  # the terminal's Ctrl-C, as the worker gets it

        wait_for(lambda: not pid_alive(worker), timeout=30, what="the worker to exit")
        time.sleep(0.5)  # a second handler would have written by now (it writes before anything else)
        assert calls.read_text().split() == [str(worker)], (tmp_path / "gunicorn.log").read_text()
        assert "SIGKILL" not in (tmp_path / "gunicorn.log").read_text()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
