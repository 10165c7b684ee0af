"""Real child processes for tests: manage.py commands pointed at the test database and broker."""
from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def database_url() -> str:
    """The URL of the database the tests run on (the test database, not the configured one)."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "extadmin.settings",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def manage(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT, env=env or child_env(), capture_output=True, text=True, timeout=timeout,
    )


def run_command(*args: str) -> tuple[int, str, str]:
    """A manage.py command in this process (``call_command``): exit status, stdout and stderr as a shell sees them."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


class ManagedProcess:
    """A long-running manage.py command (an agent, a server) that a test can kill and restart."""

    def __init__(self, *args: str, env: dict[str, str], log: Path, argv: list[str] | None = None,
                 sigint: signal.Handlers | None = None) -> None:
        """``args`` of a manage.py command, or any command as ``argv`` (a server, a broker); ``sigint``
        sets how it starts with SIGINT (else as this process has it)."""
        self.argv = argv or [sys.executable, str(ROOT / "manage.py"), *args]
        self.env, self.log, self.sigint = env, log, sigint
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        out = self.log.open("ab")
        sigint = self.sigint
        self.proc = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=None if sigint is None else lambda: signal.signal(signal.SIGINT, sigint),
        )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup runs, as in a crash."""
        if self.alive:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15) -> None:
        if self.alive:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by its parent) still answers kill 0: read its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except FileNotFoundError:
        return False


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def http_get(port: int, path: str, **headers: str) -> tuple[int, str]:
    """GET ``path`` from a server on this machine: status and body, whatever the status."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310 (http://127.0.0.1 only)
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def run_env(tmp: Path, *, port: int, **extra: str) -> dict[str, str]:
    """The environment of an operator who sets nothing but a port, on the test database and broker:
    nothing of DJANGO_* or EXTADMIN_* passes on except a var/ folder under ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "EXTADMIN_"))}
    env.update(
        DATABASE_URL=database_url(), CELERY_BROKER_URL=settings.CELERY_BROKER_URL, EXTADMIN_VAR=str(tmp / "var"),
        DJANGO_STATIC_ROOT=str(tmp / "static"), PORT=str(port), PYTHONUNBUFFERED="1", **extra,
    )
    return env


class RunCommand(ManagedProcess):
    """``scripts/run`` as an operator starts it (``run_env``): its defaults are what is tested."""

    def __init__(self, tmp: Path, *, sigint: signal.Handlers | None = None, **extra: str) -> None:
        self.var, self.port = tmp / "var", free_port()
        env = run_env(tmp, port=self.port, **extra)
        super().__init__(env=env, log=tmp / "run.log", argv=[str(ROOT / "scripts" / "run")], sigint=sigint)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answers(self) -> bool:
        return port_answers(self.port)

    def started(self, *, timeout: float = 180) -> RunCommand:
        def up() -> bool:
            assert self.alive, self.output()
            return self.answers()

        wait_for(up, timeout=timeout, what="scripts/run's console")
        return self

    def terminate(self, *, timeout: float = 60) -> int:
        """SIGTERM to scripts/run itself (not its group), as ``kill`` or a service manager sends it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.wait_stopped(timeout=timeout)

    def wait_stopped(self, *, timeout: float = 60) -> int:
        """Its exit status; if it runs on past ``timeout``, which of its processes still run and the
        end of every log (then the group is killed, so no test inherits them)."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            ps = subprocess.run(["ps", "-o", "pid,ppid,stat,etime,args", "-g", str(self.proc.pid)],
                                capture_output=True, text=True).stdout
            logs = {p.name: p.read_text(errors="replace")[-3000:] for p in sorted((self.var / "log").glob("*.log"))}
            self.kill()
            raise AssertionError(f"scripts/run still ran {timeout}s after it was asked to stop:\n{ps}\n"
                                 f"{self.output()[-3000:]}\n{logs}") from None

    def get(self, path: str, **headers: str) -> tuple[int, str]:
        return http_get(self.port, path, **headers)

    def node_log(self, name: str) -> str:
        path = self.var / "log" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def wait_for(condition: Callable[[], object], *, timeout: float = 30, interval: float = 0.1, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")


class Pause:
    """Holds a child process at a fault checkpoint until the test lets it go on.

    ``EXTADMIN_FAULTS=pause.at("import.after_unzip")``: the child creates ``<file>.reached`` there
    and waits until ``<file>`` exists (``extadmin.faults``, mode ``wait:``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def at(self, point: str) -> str:
        return f"{point}=wait:{self.path}"

    def wait_reached(self, timeout: float = 60) -> None:
        reached = self.path.with_name(self.path.name + ".reached")
        wait_for(reached.exists, timeout=timeout, interval=0.05, what=f"a child to reach {self.path.name}")

    def release(self) -> None:
        self.path.touch()
