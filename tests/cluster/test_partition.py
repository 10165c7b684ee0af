"""An agent cut off from the database and the broker (a TCP proxy the test controls, real sockets).

While cut off its files stay as they are, the console shows it offline within three heartbeats
(never "installed" of what it could not fetch), and once the network heals it converges by itself.
PostgreSQL and Redis or RabbitMQ only: SQLite and the filesystem broker have no network to cut.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from extadmin.models import ExtensionPackage
from nodes.convergence import OFFLINE_AFTER_HEARTBEATS
from nodes.selectors import node_is_online
from nodes.status import package_nodes_document
from tests.cluster.conftest import Cluster
from tests.nodes.conftest import Importer
from tests.processes import database_url, wait_for
from tests.tcpproxy import TcpProxy

pytestmark = [
    pytest.mark.cluster, pytest.mark.postgresql, pytest.mark.networked_broker, pytest.mark.django_db(transaction=True),
]

HEARTBEAT = 1.0


@pytest.fixture
def proxies() -> Iterator[tuple[TcpProxy, TcpProxy]]:
    db, broker = urlsplit(database_url()), urlsplit(settings.CELERY_BROKER_URL)
    pair = (TcpProxy(db.hostname or "127.0.0.1", db.port or 5432),
            TcpProxy(broker.hostname or "127.0.0.1", broker.port or (6379 if broker.scheme == "redis" else 5672)))
    yield pair
    for p in pair:
        p.close()


def _through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    return proxy.url_for(url, parts.hostname or "127.0.0.1", parts.port or 0)


def _cell(package: ExtensionPackage, node: str) -> dict:
    doc = package_nodes_document(package=package)
    return next(e for e in doc["nodes"] if e["node"] == node)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_cut_off_agent_keeps_its_files_shows_offline_and_converges_when_healed(
    cluster: Cluster, import_package: Importer, proxies: tuple[TcpProxy, TcpProxy]
) -> None:
    db, broker = proxies
    alpha = import_package("Alpha")
    name = cluster.name(1)
    cluster.agent(
        name, DATABASE_URL=_through(db, database_url()), CELERY_BROKER_URL=_through(broker, settings.CELERY_BROKER_URL),
        EXTADMIN_HEARTBEAT_INTERVAL=str(HEARTBEAT), EXTADMIN_SYNC_INTERVAL="3",
    ).start()
    cluster.wait_started(name)
    cluster.wait_converged([name], [alpha])
    extensions = cluster.storage(name).extensions
    before = _files(extensions)

    db.cut()
    broker.cut()
    cut_at = time.monotonic()
    beta = import_package("Beta")  # the console goes on; the agent cannot hear of it
    wait_for(lambda: not node_is_online(name=name), timeout=OFFLINE_AFTER_HEARTBEATS * HEARTBEAT + 3,
             what=f"{name} shown offline")
    offline_after = time.monotonic() - cut_at
    assert offline_after <= OFFLINE_AFTER_HEARTBEATS * HEARTBEAT + 2.5, offline_after
    assert _cell(alpha, name)["state"] == "offline"
    assert _cell(beta, name)["state"] == "offline"
    assert package_nodes_document(package=beta)["offline"] >= 1  # counted beside, never as converged
    time.sleep(3)  # a few of its own sync ticks while cut off
    assert cluster.agents[name].alive, cluster.agents[name].output()
    assert _files(extensions) == before  # nothing removed or half-written while it could not read the database

    db.heal()
    broker.heal()
    deadline = time.monotonic() + 60
    while not cluster.holds(name, beta):
        cell = _cell(beta, name)
        if cell["state"] == "installed":  # never before its disk proves it
            assert cluster.storage(name).read_chk("Beta") == beta.sha256
        assert time.monotonic() < deadline, cluster.agents[name].output()[-3000:]
        time.sleep(0.2)
    assert cluster.holds(name, alpha)
    wait_for(lambda: node_is_online(name=name), timeout=10, what=f"{name} online again")
    assert _cell(beta, name)["state"] == "installed"


def test_an_agent_started_while_its_database_is_cut_off_waits_for_it_and_then_converges(
    cluster: Cluster, import_package: Importer, proxies: tuple[TcpProxy, TcpProxy]
) -> None:
    """Found by CI: an agent whose registration lost its connection (the database restarting) exited."""
    db, _ = proxies
    alpha = import_package("Alpha")
    name = cluster.name(1)
    db.cut()
    agent = cluster.agent(name, DATABASE_URL=_through(db, database_url()), EXTADMIN_HEARTBEAT_INTERVAL=str(HEARTBEAT))
    agent.start()
    wait_for(lambda: "could not register: the database cannot be reached" in agent.output(), timeout=15,
             what=f"{name} saying it waits for the database")
    time.sleep(2)  # a few more tries
    assert agent.alive, agent.output()[-3000:]
    assert "Traceback" not in agent.output()

    db.heal()
    cluster.wait_started(name)
    cluster.wait_converged([name], [alpha])
    assert cluster.storage(name).read_chk("Alpha") == alpha.sha256


def test_an_agent_whose_database_setting_is_wrong_exits_at_once_saying_why(cluster: Cluster) -> None:
    """Waiting mends an unreachable database, never a setting: a role that does not exist ends the start."""
    name = cluster.name(1)
    parts = urlsplit(database_url())
    wrong = urlunsplit(parts._replace(netloc=f"extadmin_no_such_role@{parts.hostname}:{parts.port or 5432}"))
    agent = cluster.agent(name, DATABASE_URL=wrong)
    agent.start()
    wait_for(lambda: not agent.alive, timeout=30, what=f"{name} exiting")
    assert agent.proc is not None and agent.proc.returncode != 0
    assert 'role "extadmin_no_such_role" does not exist' in agent.output()
    assert "trying again" not in agent.output()
