"""A real cluster for the reliability tests: gunicorn, N node agents, a broker — all processes.

* ``Web``: the app behind real gunicorn on a free port, acting as node ``<prefix>-web`` with its
  own storage; uploads go through HTTP (multipart, token auth) exactly as a client sends them.
* ``Agent``: ``manage.py run_node`` per node, each with its own storage folder.
* ``PrivateRedis``: a redis-server of this test alone on a free port, so stopping it (the
  "broker down" fault) never disturbs anyone else on the machine.
Any process can be SIGKILLed (its whole process group) and started again. Everything reads and
writes the test database (SQLite file or PostgreSQL) through ``tests.processes.child_env``.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extadmin.models import ExtensionPackage
from extadmin.storage import NodeStorage
from nodes.models import SyncState
from tests.processes import ROOT, ManagedProcess, child_env, wait_for

GUNICORN = str(Path(ROOT) / ".venv" / "bin" / "gunicorn")
FAST = {"EXTADMIN_HEARTBEAT_INTERVAL": "1", "EXTADMIN_SYNC_INTERVAL": "60", "EXTADMIN_LOG_LEVEL": "WARNING"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc(ManagedProcess):
    """Any command as a process group that can be killed hard and started again."""

    def __init__(self, argv: list[str], *, env: dict[str, str], log: Path) -> None:
        super().__init__(env=env, log=log, argv=argv)


class PrivateRedis:
    """redis-server on a free port, no persistence: stop() is a broker outage for this test only."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = Proc(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--daemonize", "no", "--dir", str(tmp)],
                         env=dict(os.environ), log=tmp / "redis.log")

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def start(self) -> PrivateRedis:
        self.proc.start()
        wait_for(self._answers, timeout=10, what="redis-server")
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.kill()


@dataclass
class Cluster:
    tmp: Path
    broker_url: str
    env: dict[str, str] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: f"r{uuid.uuid4().hex[:6]}")
    agents: dict[str, ManagedProcess] = field(default_factory=dict)
    web: Proc | None = None
    port: int = 0

    # --- nodes ------------------------------------------------------------------------------
    def node(self, i: int | str) -> str:
        return f"{self.prefix}-{i}"

    def storage(self, name: str) -> NodeStorage:
        return NodeStorage(self.tmp / "storage" / name)

    def child_env(self, **extra: str) -> dict[str, str]:
        return child_env(**{**FAST, "CELERY_BROKER_URL": self.broker_url, **self.env, **extra})

    def agent(self, name: str, **env: str) -> ManagedProcess:
        proc = ManagedProcess("run_node", "--name", name, "--storage", str(self.storage(name).root),
                              env=self.child_env(**env), log=self.tmp / f"{name}.log")
        self.agents[name] = proc
        return proc

    def start_agents(self, count: int, **env: str) -> list[str]:
        names = [self.node(i) for i in range(1, count + 1)]
        for name in names:
            self.agent(name, **env).start()
        return names

    def restart(self, name: str, **env: str) -> ManagedProcess:
        self.agents[name].kill()
        return self.agent(name, **env).start()

    # --- the web app behind gunicorn ------------------------------------------------------
    @property
    def web_name(self) -> str:
        return self.node("web")

    def start_web(self, *, workers: int = 2, threads: int = 1, **env: str) -> Cluster:
        self.port = self.port or free_port()
        upload_tmp = self.tmp / "upload-tmp"
        upload_tmp.mkdir(exist_ok=True)
        self.web = Proc(
            [GUNICORN, "extadmin.wsgi", "-b", f"127.0.0.1:{self.port}", "-w", str(workers), "--threads", str(threads),
             "--timeout", "120", "--graceful-timeout", "5", "--no-control-socket"],
            env=self.child_env(EXTADMIN_NODE=self.web_name, EXTADMIN_STORAGE=str(self.storage(self.web_name).root),
                               EXTADMIN_UPLOAD_TMP=str(upload_tmp), **env),
            log=self.tmp / "gunicorn.log",
        ).start()
        wait_for(self._web_answers, timeout=30, what="gunicorn")
        return self

    def _web_answers(self) -> bool:
        assert self.web is not None and self.web.alive, self.web.output() if self.web else ""
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/accounts/login/", timeout=2)
            return True
        except (urllib.error.URLError, OSError):
            return False

    def upload(self, path: Path, token: str, *, timeout: float = 120) -> tuple[int, Any]:
        """POST /api/extensions/ with the zip as multipart field ``file``; returns (status, JSON)."""
        boundary = uuid.uuid4().hex
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            "Content-Type: application/zip\r\n\r\n"
        ).encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/extensions/", data=body, method="POST",
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Token {token}"},
        )
        return self._json(req, timeout)

    def get(self, url: str, token: str) -> tuple[int, Any]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{url}",
                                     headers={"Authorization": f"Token {token}"})
        return self._json(req, 30)

    def delete(self, name: str, token: str) -> tuple[int, Any]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/extensions/{name}/",
                                     method="DELETE", headers={"Authorization": f"Token {token}"})
        return self._json(req, 60)

    @staticmethod
    def _json(req: urllib.request.Request, timeout: float) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")

    # --- what the nodes hold ---------------------------------------------------------------
    def disk_problem(self, name: str, package: ExtensionPackage) -> str | None:
        storage = self.storage(name)
        if storage.read_chk(package.name) != package.sha256:
            return f"{name}: {package.name}.chk is {storage.read_chk(package.name)}"
        return storage.verify(package.name, package.archive.manifest, contents=True)

    def holds(self, name: str, package: ExtensionPackage) -> bool:
        return SyncState.objects.filter(
            node__name=name, package_name=package.name, state=SyncState.State.INSTALLED,
            installed_sha256=package.sha256,
        ).exists() and self.disk_problem(name, package) is None

    def converged(self, names: list[str]) -> bool:
        """Every node holds exactly what the database has: each package proven, nothing else on disk."""
        packages = list(ExtensionPackage.objects.filter(archive__isnull=False).select_related("archive"))
        want = sorted(p.name for p in packages)
        return all(
            self.storage(n).installed_names() == want and all(self.holds(n, p) for p in packages) for n in names
        )

    def wait_converged(self, names: list[str], *, timeout: float = 60) -> None:
        try:
            wait_for(lambda: self.converged(names), timeout=timeout, interval=0.3, what=f"convergence of {names}")
        except AssertionError:
            raise AssertionError(self.explain(names)) from None

    def explain(self, names: list[str]) -> str:
        lines = ["not converged:"]
        for p in ExtensionPackage.objects.filter(archive__isnull=False):
            for n in names:
                s = SyncState.objects.filter(node__name=n, package_name=p.name).first()
                lines.append(f"  {n} {p.name} {p.version}: state={s and s.state} err={s and s.error} "
                             f"disk={self.disk_problem(n, p)}")
        for n in names:
            lines.append(f"  {n} disk: {self.storage(n).installed_names()}")
            proc = self.agents.get(n)
            if proc is not None:
                lines.append(f"  {n} alive={proc.alive}; log tail: {proc.output()[-1500:]}")
        return "\n".join(lines)

    def false_installed(self, names: list[str]) -> list[str]:
        """Every 'installed' a node shows for a checksum or files its disk does not have."""
        wrong = []
        for s in SyncState.objects.filter(node__name__in=names, state=SyncState.State.INSTALLED).select_related("node"):
            storage = self.storage(s.node.name)
            if storage.read_chk(s.package_name) != s.installed_sha256:
                wrong.append(f"{s.node.name}/{s.package_name}: shown {s.installed_sha256[:8]}, "
                              f"disk {storage.read_chk(s.package_name)}")
        return wrong

    # --- teardown ---------------------------------------------------------------------------
    def stop_all(self) -> None:
        running = [p for p in self.agents.values() if p.alive and p.proc is not None]
        for p in running:
            os.killpg(p.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
        for p in running:
            p.proc.wait(timeout=10)  # type: ignore[union-attr]
        if self.web is not None:
            self.web.kill()


def wait_until(condition, *, timeout: float = 30, what: str = "") -> Any:  # type: ignore[no-untyped-def]
    return wait_for(condition, timeout=timeout, interval=0.2, what=what)


def sleep_past(seconds: float) -> None:
    time.sleep(seconds)
