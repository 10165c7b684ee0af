"""Real node agents (``manage.py run_node``) as separate processes, each with its own storage.

The test process imports and removes packages on node ``web``; the agents sync through the real
broker (the embedded filesystem one, or Redis/RabbitMQ from CELERY_BROKER_URL) and the real test
database. Node names are unique per test so that messages left by one test never reach another.
"""
from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from extadmin.celery import app as celery_app
from extadmin.models import ExtensionPackage
from extadmin.storage import NodeStorage
from nodes.models import SyncRun, SyncState
from nodes.services import node_queue
from tests.nodes.conftest import import_package  # noqa: F401 (the same fixture: import on node web)
from tests.processes import ManagedProcess, child_env, wait_for

# Short intervals keep the whole cluster suite quick; the periodic pass is long unless a test
# needs it, so that convergence within seconds proves the nudge reached the node's own queue.
FAST = {"EXTADMIN_HEARTBEAT_INTERVAL": "1", "EXTADMIN_SYNC_INTERVAL": "60", "EXTADMIN_LOG_LEVEL": "INFO"}


class Cluster:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.prefix = f"c{uuid.uuid4().hex[:6]}"
        self.agents: dict[str, ManagedProcess] = {}

    def name(self, i: int) -> str:
        return f"{self.prefix}-{i}"

    def storage(self, name: str) -> NodeStorage:
        return NodeStorage(self.tmp / "storage" / name)

    def agent(self, name: str, **env: str) -> ManagedProcess:
        """A run_node process for ``name`` (not started); it replaces any earlier one of that name."""
        proc = ManagedProcess(
            "run_node", "--name", name, "--storage", str(self.storage(name).root),
            env=child_env(**{**FAST, **env}), log=self.tmp / f"{name}.log",
        )
        self.agents[name] = proc
        return proc

    def start(self, count: int, **env: str) -> list[str]:
        """Start ``count`` agents and wait until each finished its startup sync."""
        names = [self.name(i) for i in range(1, count + 1)]
        for name in names:
            self.agent(name, **env).start()
        for name in names:
            self.wait_started(name)
        return names

    def wait_started(self, name: str, *, timeout: float = 60) -> None:
        def started() -> bool:
            assert self.agents[name].alive, self.agents[name].output()
            return SyncRun.objects.filter(
                node__name=name, trigger=SyncRun.Trigger.STARTUP
            ).exclude(outcome=SyncRun.Outcome.RUNNING).exists()

        wait_for(started, timeout=timeout, what=f"{name}'s startup sync")

    def holds(self, name: str, package: ExtensionPackage) -> bool:
        """The node proved the package: its state says so, and its disk agrees."""
        storage = self.storage(name)
        return (
            SyncState.objects.filter(
                node__name=name, package_name=package.name, state=SyncState.State.INSTALLED,
                installed_sha256=package.sha256,
            ).exists()
            and storage.read_chk(package.name) == package.sha256
            and storage.verify(package.name, package.archive.manifest, contents=True) is None
        )

    def wait_converged(self, names: list[str], packages: list[ExtensionPackage], *, timeout: float = 30) -> None:
        wait_for(
            lambda: all(self.holds(n, p) for n in names for p in packages), timeout=timeout,
            what=f"{[p.name for p in packages]} on {names}",
        )

    def stop_all(self) -> None:
        """SIGTERM every agent at once, then wait: a clean stop takes a broker poll or two each."""
        running = [p for p in self.agents.values() if p.alive and p.proc is not None]
        for p in running:
            os.killpg(p.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]
        for p in running:
            try:
                p.proc.wait(timeout=15)  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                p.kill()
        self.purge_queues()

    def purge_queues(self) -> None:
        """Drop nudges nobody will consume any more (these node names are never used again)."""
        with celery_app.connection_for_write() as conn:
            for name in [*self.agents, "web"]:  # web: the test process's own node, never an agent here
                try:
                    with conn.channel() as channel:
                        channel.queue_purge(node_queue(name))
                except Exception:  # noqa: S112 (a queue that was never declared)
                    continue


LOG_TAIL_LINES = 80


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed cluster test shows the end of every agent's log beside its traceback: what the
    agents did (a pass that could not run, a lost nudge) is what a timeout cannot say."""
    report = yield
    cluster = getattr(item, "extadmin_cluster", None)
    if report.failed and cluster is not None:
        for name, proc in cluster.agents.items():
            tail = "\n".join(proc.output().splitlines()[-LOG_TAIL_LINES:])
            report.sections.append((f"agent {name}: the last {LOG_TAIL_LINES} lines of its log", tail))
    return report


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path, node_storage: NodeStorage, settings) -> Iterator[Cluster]:  # type: ignore[no-untyped-def]
    # This process judges liveness by the agents' heartbeat interval, not its own default.
    settings.EXTADMIN_HEARTBEAT_INTERVAL = float(FAST["EXTADMIN_HEARTBEAT_INTERVAL"])
    c = Cluster(tmp_path)
    request.node.extadmin_cluster = c  # for pytest_runtest_makereport
    yield c
    c.stop_all()  # before the test database is flushed under them
