"""Nudges after an import: online nodes only, one bounded attempt at the broker, and an expiry.

The broker is real: the suite's own (filesystem or Redis) for what a nudge carries, and for the
outages a private redis-server that is stopped, or a socket that accepts and never answers (a hung
broker). The imports run as real ``manage.py import_extension`` processes, the CLI door.
"""
from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from extadmin.celery import app as celery_app
from extadmin.models import ExtensionPackage
from nodes.models import Node
from nodes.services import NUDGE_EXPIRES_SECONDS, node_queue, nodes_nudge
from tests.packages import build_package
from tests.processes import child_env, manage
from tests.reliability.harness import PrivateRedis

pytestmark = pytest.mark.django_db(transaction=True)


def register(prefix: str, count: int, *, online: bool) -> list[str]:
    """``count`` nodes whose agents beat just now (online) or an hour ago (offline)."""
    seen = timezone.now() - (timedelta(0) if online else timedelta(hours=1))
    names = [f"{prefix}-{'on' if online else 'off'}{i}" for i in range(count)]
    Node.objects.bulk_create([Node(name=n, last_heartbeat=seen) for n in names])
    return names


def take(name: str) -> list[dict[str, object]]:
    """Every message waiting on node ``name``'s queue (consumed): their headers."""
    taken = []
    with celery_app.connection_for_read() as conn:
        channel = conn.default_channel
        while True:
            try:
                message = channel.basic_get(node_queue(name), no_ack=True)
            except Exception:  # a queue never declared on this broker: nothing waits there
                break
            if message is None:
                break
            taken.append(dict(message.headers))
    return taken


class SilentBroker:
    """A TCP port that accepts connections and never answers: a hung broker. Counts the connections."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0), backlog=200)
        self.url = f"redis://127.0.0.1:{self.server.getsockname()[1]}/0"
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        for conn in self.accepted:
            conn.close()
        self.server.close()


@pytest.fixture
def silent_broker() -> Iterator[SilentBroker]:
    broker = SilentBroker()
    yield broker
    broker.close()


def import_by_cli(path: Path, broker_url: str, tmp_path: Path) -> tuple[int, str]:
    env = child_env(CELERY_BROKER_URL=broker_url, EXTADMIN_NODE="web", EXTADMIN_STORAGE=str(tmp_path / "web"),
                    EXTADMIN_LOG_LEVEL="INFO")
    result = manage("import_extension", str(path), env=env, timeout=110)
    return result.returncode, result.stdout + result.stderr


def nudge_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "nudge" in line]


def test_it_nudges_only_online_nodes_and_gives_each_nudge_an_expiry() -> None:
    prefix = f"z{uuid.uuid4().hex[:6]}"
    online, offline = register(prefix, 2, online=True), register(prefix, 2, online=False)
    before = timezone.now()

    assert nodes_nudge() == 2

    for name in online:
        [headers] = take(name)
        assert headers["task"] == "nodes.sync"
        expires = datetime.fromisoformat(str(headers["expires"]))
        assert before + timedelta(seconds=NUDGE_EXPIRES_SECONDS - 5) <= expires
        assert expires <= timezone.now() + timedelta(seconds=NUDGE_EXPIRES_SECONDS + 5)
    for name in offline:
        assert take(name) == [], f"the offline node {name} was nudged"


def test_it_makes_one_bounded_attempt_per_import_at_a_hung_broker(
    silent_broker: SilentBroker, pkgdir: Path, tmp_path: Path
) -> None:
    register("hung", 30, online=True)
    register("hung", 10, online=False)

    status, output = import_by_cli(build_package(pkgdir, "Nudged"), silent_broker.url, tmp_path)

    assert status == 0, output
    assert ExtensionPackage.objects.filter(name="Nudged").exists()  # the import committed all the same
    assert len(silent_broker.accepted) == 1, f"{len(silent_broker.accepted)} connections to the broker"
    [line] = nudge_lines(output)
    assert "could not nudge 30 nodes" in line and "periodic pass" in line


def test_it_stops_nudging_at_the_first_failure_when_the_broker_is_down(pkgdir: Path, tmp_path: Path) -> None:
    if not PrivateRedis.available():
        pytest.skip("redis-server is not installed")
    redis = PrivateRedis(tmp_path).start()
    redis.stop()  # the broker was there and is gone: connections are refused
    register("down", 30, online=True)

    status, output = import_by_cli(build_package(pkgdir, "Nudged"), redis.url, tmp_path)

    assert status == 0, output
    assert ExtensionPackage.objects.filter(name="Nudged").exists()
    [line] = nudge_lines(output)
    assert "could not nudge 30 nodes" in line
