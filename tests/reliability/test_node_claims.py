"""One agent per node name, one node per extensions folder — checked on real processes and folders.

Promises (reliability.md, Faults): two nodes pointed at the same ``extensions/`` folder → the second
refuses to start, saying why, also when it reaches the folder through a symbolic link; a second
agent started with a name whose agent is still alive is refused, naming that agent; a dead agent's
row never blocks its restart.
"""
from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from extadmin.claim import storage_claim
from extadmin.models import ExtensionPackage
from extadmin.storage import NodeStorage
from nodes.models import Node
from tests.packages import build_package
from tests.processes import manage, wait_for
from tests.reliability.doors import DOORS, Doors
from tests.reliability.harness import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def _registered(name: str, pid: int) -> bool:
    return Node.objects.filter(name=name, pid=pid, last_heartbeat__isnull=False).exists()


def _start(cluster: Cluster, name: str, storage: NodeStorage | None = None) -> int:
    proc = cluster.agent(name)
    if storage is not None:
        proc.argv[proc.argv.index("--storage") + 1] = str(storage.root)
    proc.start()
    assert proc.proc is not None
    wait_for(lambda: _registered(name, proc.proc.pid), timeout=60, what=f"agent {name} registered")  # type: ignore[union-attr]
    return proc.proc.pid


def _linked_storage(cluster: Cluster, name: str, target: NodeStorage) -> NodeStorage:
    storage = cluster.storage(name)
    storage.root.mkdir(parents=True)
    target.extensions.mkdir(parents=True, exist_ok=True)
    storage.extensions.symlink_to(target.extensions)
    return storage


# --- 18. an extensions folder reached through a link ----------------------------------------------


def test_it_refuses_an_agent_whose_extensions_folder_links_to_a_running_nodes(cluster: Cluster) -> None:
    first = cluster.node(1)
    _start(cluster, first)
    linked = _linked_storage(cluster, cluster.node(2), cluster.storage(first))

    r = manage("run_node", "--name", cluster.node(2), "--storage", str(linked.root), env=cluster.child_env(),
               timeout=60)

    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith(
        f"error: start: storage {linked.root}: its extensions folder is a link to "
        f"{cluster.storage(first).extensions}, which "
    ), r.stderr
    assert first in r.stderr
    assert cluster.agents[first].alive
    assert not Node.objects.filter(name=cluster.node(2)).exists()


def test_it_refuses_sync_node_on_an_extensions_folder_linked_to_another_nodes(cluster: Cluster) -> None:
    first = cluster.node(1)
    assert manage("sync_node", "--name", first, "--storage", str(cluster.storage(first).root),
                  env=cluster.child_env()).returncode == 0
    linked = _linked_storage(cluster, cluster.node(2), cluster.storage(first))

    r = manage("sync_node", "--name", cluster.node(2), "--storage", str(linked.root), env=cluster.child_env())

    assert r.returncode == 1
    assert r.stderr.startswith(f"error: start: storage {linked.root}: its extensions folder is a link"), r.stderr
    assert f"which belongs to node {first}" in r.stderr
    assert not Node.objects.filter(name=cluster.node(2)).exists()


@pytest.mark.parametrize("door", DOORS)
def test_it_refuses_an_import_into_an_extensions_folder_linked_to_another_nodes(door, cluster, web_storage, web_env,
                                                                               pkgdir):
    first = cluster.node(1)
    storage_claim(storage=cluster.storage(first), node_name=first, exclusive=False).release()
    cluster.storage(first).extensions.mkdir()
    web_storage.root.mkdir(parents=True)
    web_storage.extensions.symlink_to(cluster.storage(first).extensions)

    status, said = Doors(env=web_env()).import_(door, build_package(pkgdir, "Shared"))

    assert status == (1 if door == "cli" else 400), said
    assert f"storage: storage {web_storage.root}: its extensions folder is a link to " in said, said
    assert f"which belongs to node {first}" in said
    assert not ExtensionPackage.objects.exists()
    assert list(cluster.storage(first).extensions.iterdir()) == []


# --- 17. one live agent per node name -------------------------------------------------------------


def test_it_refuses_a_second_agent_with_the_name_of_a_live_one(cluster: Cluster) -> None:
    name = cluster.node(1)
    pid = _start(cluster, name)
    elsewhere = cluster.storage(f"{name}-elsewhere")

    r = manage("run_node", "--name", name, "--storage", str(elsewhere.root), env=cluster.child_env(), timeout=30)

    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith(f"error: start: node {name} already has a live agent: "), r.stderr
    node = Node.objects.get(name=name)
    for said in (f"host {socket.gethostname()}", f"pid {pid}", f"storage {cluster.storage(name).root}",
                 "last heartbeat "):
        assert said in r.stderr, r.stderr
    assert (node.pid, node.storage_path) == (pid, str(cluster.storage(name).root))  # the live agent's row kept
    assert cluster.agents[name].alive


def test_it_restarts_an_agent_whose_previous_process_died(cluster: Cluster) -> None:
    name = cluster.node(1)
    _start(cluster, name)
    cluster.agents[name].kill()  # its heartbeat is still fresh, but its pid is gone

    pid = _start(cluster, name, cluster.storage(f"{name}-moved"))

    assert Node.objects.get(name=name).storage_path == str(cluster.storage(f"{name}-moved").root)
    assert cluster.agents[name].alive and cluster.agents[name].proc.pid == pid  # type: ignore[union-attr]


@pytest.mark.parametrize("age", [0, 3600], ids=["fresh", "stale"])
def test_it_judges_an_agent_on_another_host_by_its_heartbeat(cluster: Cluster, age: int) -> None:
    name = cluster.node(1)
    Node.objects.create(
        name=name, host="another-host", pid=4242, storage_path="/srv/elsewhere", agent_version="0.1.0",
        started_at=timezone.now() - timedelta(seconds=age + 60), last_heartbeat=timezone.now() - timedelta(seconds=age),
    )
    if age:
        _start(cluster, name)  # gone for an hour: its row does not block the node's new agent
        assert Node.objects.get(name=name).host == socket.gethostname()
        return

    # A heartbeat interval of 30 s: the row stays fresh (online for three beats) however long this
    # agent takes to start on a loaded machine; at the suite's 1 s, a start past 3 s saw it stale.
    r = manage("run_node", "--name", name, "--storage", str(cluster.storage(name).root),
               env=cluster.child_env(EXTADMIN_HEARTBEAT_INTERVAL="30"), timeout=60)

    assert r.returncode == 1, r.stderr
    assert "already has a live agent: host another-host, pid 4242, storage /srv/elsewhere" in r.stderr, r.stderr
