"""Real child processes for tests: manage.py commands pointed at the test database and broker."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
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

    def __init__(self, *args: str, env: dict[str, str], log: Path, argv: list[str] | None = None) -> None:
        """``args`` of a manage.py command, or any command as ``argv`` (a server, a broker)."""
        self.argv = argv or [sys.executable, str(ROOT / "manage.py"), *args]
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
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
