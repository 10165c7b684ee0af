"""``scripts/run`` and its agent supervisor (``scripts/supervise``), as real processes.

One agent that dies must not take the console and the other agents with it: its supervisor starts
it again after a short pause and says so in the agent's log. Stopping the run command (Ctrl-C or
SIGTERM) still stops everything.
"""
from __future__ import annotations

import http.client
import http.cookiejar
import os
import re
import signal
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from nodes.models import Node, SyncRun
from tests.cluster.conftest import FAST
from tests.processes import ROOT, ManagedProcess, Pause, RunCommand, child_env, pid_alive, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

SUPERVISE = str(ROOT / "scripts" / "supervise")


def agent_pid(name: str, *, startups: int = 1) -> int | None:
    """The live pid of ``name``'s agent once it finished its ``startups``-th startup sync."""
    finished = SyncRun.objects.filter(node__name=name, trigger=SyncRun.Trigger.STARTUP).exclude(
        outcome=SyncRun.Outcome.RUNNING
    )
    pid = Node.objects.filter(name=name).values_list("pid", flat=True).first()
    return pid if finished.count() >= startups and pid_alive(pid) else None


@pytest.mark.processes
def test_it_restarts_a_killed_agent_and_says_so_in_its_log(tmp_path: Path) -> None:
    name = f"s{uuid.uuid4().hex[:6]}"
    log = tmp_path / f"{name}.log"
    agent = [sys.executable, str(ROOT / "manage.py"), "run_node", "--name", name, "--storage", str(tmp_path / name)]
    supervisor = ManagedProcess(env=child_env(**FAST), log=tmp_path / "supervisor.out",
                                argv=[SUPERVISE, name, str(log), *agent]).start()
    first = wait_for(lambda: agent_pid(name), timeout=60, what=f"{name}'s agent")
    assert isinstance(first, int)

    os.kill(first, signal.SIGKILL)

    wait_for(lambda: f"agent {name} exited with status 137; restarting in 2 s" in log.read_text(), timeout=20,
             what="the restart line in the agent's log")
    second = wait_for(lambda: agent_pid(name, startups=2), timeout=60, what=f"{name}'s agent, restarted")
    assert second != first

    assert supervisor.proc is not None
    supervisor.proc.send_signal(signal.SIGTERM)  # the supervisor alone: it must stop its agent itself
    assert supervisor.proc.wait(timeout=30) == 0
    assert not pid_alive(second)  # type: ignore[arg-type]
    assert log.read_text().count("restarting in") == 1  # stopped, not restarted


@pytest.mark.processes
def test_it_keeps_the_console_and_the_other_agents_when_one_agent_dies(tmp_path: Path) -> None:
    run = RunCommand(tmp_path).start()
    try:
        run.started()
        nodes = ["node-1", "node-2", "node-3"]
        pids = {n: wait_for(lambda n=n: agent_pid(n), timeout=120, what=f"{n}'s agent") for n in nodes}

        os.kill(pids["node-2"], signal.SIGKILL)  # type: ignore[arg-type]

        wait_for(lambda: "agent node-2 exited with status 137; restarting in 2 s" in run.node_log("node-2"),
                 timeout=20, what="the restart line in node-2's log")
        restarted = wait_for(lambda: agent_pid("node-2", startups=2), timeout=90, what="node-2 restarted")
        assert run.alive, run.output()
        assert run.get("/accounts/login/")[0] == 200
        assert all(pid_alive(pids[n]) for n in ("node-1", "node-3"))  # type: ignore[arg-type]
    finally:
        status = run.terminate()

    assert status in (0, 143), run.output()
    assert not any(pid_alive(p) for p in [*pids.values(), restarted])  # type: ignore[arg-type]
    assert not run.answers()


@pytest.mark.processes
@pytest.mark.parametrize(("sig", "sigint"), [
    (signal.SIGINT, signal.SIG_DFL), (signal.SIGINT, signal.SIG_IGN), (signal.SIGHUP, signal.SIG_DFL),
], ids=["ctrl-c-from-a-terminal", "ctrl-c-in-a-scripts-background", "its-terminal-closed"])
def test_it_stops_everything_on_ctrl_c(tmp_path: Path, sig: signal.Signals, sigint: signal.Handlers) -> None:
    """A Ctrl-C when started from a terminal, or with SIGINT ignored, as a script's background job
    starts (then scripts/run cannot trap it, and each of its processes must stop on the group's
    SIGINT itself); a hangup, when its terminal closes (agents came back as orphans: Celery's answer
    to SIGHUP is to exec itself again)."""
    run = RunCommand(tmp_path, sigint=sigint).start()
    try:
        run.started()
        pids = [wait_for(lambda n=n: agent_pid(n), timeout=120, what=f"{n}'s agent") for n in ("node-1", "node-2")]
        # Everything running, the webhooks worker too: a stop is what this tests, not a start. (A
        # Celery worker whose second stop signal landed inside the first one's handler ran until its
        # supervisor killed it: defect 32, tests/test_celery_worker.py lands it there every time.)
        for name in ("node-1", "node-2", "node-3", "webhooks"):  # their Celery workers (an agent's comes
            # after its startup sync; a stop before it is test_an_agent_asked_to_stop_just_after_…)
            wait_for(lambda name=name: " ready." in run.node_log(name), timeout=120, what=f"{name}'s worker")
    finally:
        assert run.proc is not None
        os.killpg(run.proc.pid, sig)  # what the terminal sends to the whole foreground group
        status = run.wait_stopped(timeout=60)

    assert status in (0, 128 + sig), run.output()
    # The agents' own pids: an agent that exec'd itself again keeps its pid.
    assert not any(pid_alive(p) for p in pids), run.output()  # type: ignore[arg-type]
    assert not run.answers()
    logs = {name: run.node_log(name) for name in ("node-1", "node-2", "node-3", "webhooks")}
    for name, log in logs.items():
        # Its own exit, not the default action of a second SIGTERM: its supervisor relayed every
        # stop it was asked for (the Ctrl-C, then scripts/run's own stop), and one landing after the
        # agent had put back the default handler, on its way out, killed it ("status 143").
        assert f"agent {name} stopped (status 0)" in log, log
        # Each supervisor stops with its agent: it used to ignore the Ctrl-C, see its agent stop on
        # it and start it again, and the new agent ran until scripts/run's own stop reached it.
        assert "restarting in" not in log, log
    # Every process stopped on its own: none was killed at a stop timeout (a gunicorn worker that
    # got the Ctrl-C and its master's SIGQUIT hung until its master killed it 20 s later).
    assert "SIGKILL" not in run.output() and "killing it" not in "".join(logs.values()), run.output()


def logged_in(run: RunCommand, username: str, password: str) -> urllib.request.OpenerDirector:
    """An opener holding a session of ``run``'s console, signed in through its login form."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    form = opener.open(f"{run.url}/accounts/login/", timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert token, form
    body = urllib.parse.urlencode({"csrfmiddlewaretoken": token[1], "username": username, "password": password})
    answer = opener.open(f"{run.url}/accounts/login/", data=body.encode(), timeout=30)
    assert not answer.url.endswith("/accounts/login/"), answer.read().decode()[-2000:]
    return opener


def test_an_open_live_page_does_not_hold_the_stop(tmp_path: Path) -> None:
    """A dashboard left open holds a live stream, and its gunicorn thread: every stop of the console
    waited the whole graceful timeout (20 s) for it. The stream now ends when the stop begins."""
    get_user_model().objects.create_superuser("watcher", password="a long enough password 1")
    run = RunCommand(tmp_path).start()
    try:
        run.started()
        stream = logged_in(run, "watcher", "a long enough password 1").open(f"{run.url}/live/events/", timeout=60)
        first = [stream.readline() for _ in range(3)]  # retry, event, data
        assert b"event: hello\n" in first, first
        assert run.proc is not None
        run.proc.send_signal(signal.SIGTERM)  # as a service manager stops it
        asked = time.monotonic()
        try:
            rest = stream.read()  # to the stream's end
        except http.client.IncompleteRead as cut:  # the worker ended with the stream still open
            rest = b"(cut) " + cut.partial
        held = time.monotonic() - asked
    finally:
        status = run.wait_stopped(timeout=60)
    assert status in (0, 143), run.output()
    # Not at the graceful timeout (20 s; the stream's keep-alive comment comes at 20 s too).
    assert held < 10, (held, rest, run.output()[-3000:])
    assert b"still here" not in rest and not rest.startswith(b"(cut)"), rest  # ended, not cut


@pytest.mark.processes
def test_its_console_opens_no_control_socket(tmp_path: Path) -> None:
    """gunicorn (25.1 and later) opens a control socket by default, at one path per user
    (``$XDG_RUNTIME_DIR/gunicorn.ctl``, else ``~/.gunicorn/gunicorn.ctl``): whoever can reach it can
    resize, reload or stop the console, and a second console on the same host took over the first
    one's. extadmin uses none of it, and the embedded default writes nothing outside ``var/``."""
    home, runtime = tmp_path / "home", tmp_path / "runtime"
    home.mkdir()
    runtime.mkdir()
    run = RunCommand(tmp_path, HOME=str(home), XDG_RUNTIME_DIR=str(runtime)).start()
    try:
        run.started()
        assert run.get("/accounts/login/")[0] == 200
        assert not (runtime / "gunicorn.ctl").exists() and not (home / ".gunicorn").exists(), run.output()
    finally:
        status = run.terminate()
    assert status in (0, 143), run.output()


@pytest.mark.processes
def test_an_agent_asked_to_stop_just_after_its_startup_sync_stops(tmp_path: Path) -> None:
    """SIGTERM after the startup sync, before the broker's worker has its own handlers: the agent
    stopped its threads but then started the worker and ran on for ever (its supervisor waited)."""
    name = f"s{uuid.uuid4().hex[:6]}"
    pause = Pause(tmp_path / "release")
    agent = ManagedProcess(
        "run_node", "--name", name, "--storage", str(tmp_path / name),
        env=child_env(**FAST, EXTADMIN_FAULTS=pause.at("agent.before_worker")), log=tmp_path / f"{name}.log",
    ).start()
    try:
        pause.wait_reached()
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGTERM)
        pause.release()
        assert agent.proc.wait(timeout=30) == 0, agent.output()[-3000:]
    finally:
        agent.kill()


@pytest.mark.processes
def test_an_agent_that_does_not_stop_is_killed_after_the_stop_timeout_and_the_log_says_so(tmp_path: Path) -> None:
    """Ctrl-C must stop everything: an agent that ignores SIGTERM (stuck, say) is killed once
    ``EXTADMIN_STOP_TIMEOUT`` has passed, instead of keeping its supervisor and scripts/run waiting."""
    log = tmp_path / "stuck.log"
    stuck = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
             "print('up', flush=True); time.sleep(600)"]
    supervisor = ManagedProcess(env=child_env(EXTADMIN_STOP_TIMEOUT="2"), log=tmp_path / "supervisor.out",
                                argv=[SUPERVISE, "stuck", str(log), *stuck]).start()
    wait_for(lambda: log.exists() and "up" in log.read_text(), timeout=30, what="the stuck agent to start")
    assert supervisor.proc is not None
    supervisor.proc.send_signal(signal.SIGTERM)
    assert supervisor.proc.wait(timeout=20) == 0
    lines = log.read_text()
    assert "agent stuck did not stop within 2 s of SIGTERM; killing it" in lines
    assert "agent stuck stopped (status 137)" in lines
    assert "restarting" not in lines
