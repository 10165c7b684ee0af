from __future__ import annotations

import itertools
import shutil
import socket
import time

import pytest
from django.utils import timezone

from extadmin.celery import app as celery_app
from extadmin.models import ExtensionPackage
from extadmin.removal import package_remove
from nodes.models import Node, SyncRun, SyncState
from nodes.services import nodes_nudge
from nodes.status import cluster_document
from tests.cluster.conftest import Cluster
from tests.nodes.conftest import Importer
from tests.processes import manage, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def test_it_converges_three_nodes_on_an_import_and_a_removal(cluster: Cluster, import_package: Importer) -> None:
    names = cluster.start(3)

    alpha = import_package("Alpha")
    beta = import_package("Beta", depends_on="Alpha:1.0.0")

    # The periodic pass is a minute away: only the nudges on each node's own queue can do this.
    cluster.wait_converged(names, [alpha, beta], timeout=30)
    doc = cluster_document()
    assert all(e["converged"] for e in doc["extensions"])
    # web (this process) too, for a few heartbeat intervals: its imports were its proof of life.
    assert {n["name"] for n in doc["nodes"] if n["online"]} - {"web"} == set(names)

    package_remove(name="Beta")
    package_remove(name="Alpha")
    wait_for(
        lambda: all(cluster.storage(n).installed_names() == [] for n in names)
        and not SyncState.objects.filter(node__name__in=names).exists(),
        timeout=30, what="every node removed both",
    )

    # A node that stops reporting is shown offline, never installed, and does not hold the others back.
    cluster.agents[names[2]].kill()
    gamma = import_package("Gamma")
    cluster.wait_converged(names[:2], [gamma])
    wait_for(lambda: not cluster_document()["nodes"][2]["online"], timeout=10, what=f"{names[2]} offline")
    doc = cluster_document()
    [ext] = doc["extensions"]
    assert ext["converged"] is True
    assert ext["nodes"][names[2]]["state"] == "offline"
    assert ext["nodes"][names[2]]["up_to_date"] is False
    # The web node (this process) imported Gamma: online for a few heartbeat intervals, then offline.
    assert ext["online"] == sum(1 for n in doc["nodes"] if n["online"]) >= 2


def test_it_repairs_a_tampered_file_and_a_deleted_folder(cluster: Cluster, import_package: Importer) -> None:
    alpha = import_package("Alpha")
    beta = import_package("Beta")
    [name] = cluster.start(1, EXTADMIN_SYNC_INTERVAL="1")
    cluster.wait_converged([name], [alpha, beta])  # the startup sync installed them
    storage = cluster.storage(name)

    (storage.package_dir("Alpha") / "lib" / "alpha.jar").write_bytes(b"tampered")
    shutil.rmtree(storage.package_dir("Beta"))

    cluster.wait_converged([name], [alpha, beta], timeout=20)
    actions = [a for run in SyncRun.objects.filter(node__name=name, trigger="periodic") for a in run.actions]
    assert "repaired Alpha: file lib/alpha.jar has 8 bytes, expected 4096" in actions
    assert "repaired Beta: the folder was missing" in actions


@pytest.mark.parametrize("point", ["sync.after_fetch", "sync.after_unzip", "sync.after_swap"])
def test_it_recovers_an_agent_killed_mid_sync(cluster: Cluster, import_package: Importer, point: str) -> None:
    old = import_package("Alpha", "1.0.0")
    old_manifest = ExtensionPackage.objects.get(name="Alpha").archive.manifest
    name = cluster.name(1)
    first = manage("sync_node", "--name", name, "--storage", str(cluster.storage(name).root))
    assert first.returncode == 0, first.stderr
    killer = cluster.agent(name, EXTADMIN_FAULTS=f"{point}=kill").start()
    cluster.wait_started(name)  # nothing to change at startup: it lives until the nudge

    new = import_package("Alpha", "1.1.0")  # the nudge makes the agent die at `point` while upgrading
    wait_for(lambda: not killer.alive, timeout=30, what=f"the agent to die at {point}")

    # The old version intact or the new one complete, never a mix.
    storage = cluster.storage(name)
    on_disk = storage.read_chk("Alpha")
    manifest = {old.sha256: old_manifest, new.sha256: new.archive.manifest}[on_disk]  # type: ignore[index]
    assert storage.verify("Alpha", manifest, contents=True) is None
    assert on_disk == (new.sha256 if point == "sync.after_swap" else old.sha256)

    cluster.agent(name, EXTADMIN_FAULTS="").start()  # the same node restarted, without the fault
    cluster.wait_converged([name], [new], timeout=30)
    assert not list((storage.work / "staging").iterdir())  # the dead sync's leftovers are gone
    # The previous copy goes right after the node reported the new version.
    wait_for(lambda: not list((storage.work / "retired").iterdir()), timeout=30, what="the previous copy deleted")
    died = SyncRun.objects.filter(node__name=name, trigger="nudge").order_by("started_at").last()
    assert died is not None and died.outcome == "failed" and "stopped before" in died.error
    cell = cluster_document()["extensions"][0]["nodes"][name]
    assert (cell["state"], cell["version"], cell["checksum"]) == ("installed", "1.1.0", new.sha256)


def test_it_runs_one_sync_at_a_time_however_often_it_is_nudged(cluster: Cluster, import_package: Importer) -> None:
    [name] = cluster.start(1, EXTADMIN_SYNC_INTERVAL="1")
    packages = [import_package(f"P{i}") for i in range(3)]
    for _ in range(10):
        nodes_nudge()
    manual = manage("sync_node", "--name", name, "--storage", str(cluster.storage(name).root))
    assert manual.returncode == 0, manual.stderr
    cluster.wait_converged([name], packages)
    time.sleep(2)  # a few more periodic passes beside the nudges

    runs = list(SyncRun.objects.filter(node__name=name).order_by("started_at"))
    assert len(runs) >= 3
    assert all(r.finished_at is not None for r in runs[:-1])
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at <= later.started_at, f"{earlier} overlaps {later}"
    # Duplicates collapse: far fewer nudge runs than nudges.
    assert SyncRun.objects.filter(node__name=name, trigger="nudge").count() < 10


def test_it_converges_by_the_periodic_pass_when_the_broker_is_unreachable(
    cluster: Cluster, import_package: Importer
) -> None:
    # Nothing listens on port 1: every message to these agents is lost.
    names = cluster.start(2, CELERY_BROKER_URL="redis://127.0.0.1:1/0", EXTADMIN_SYNC_INTERVAL="1")

    alpha = import_package("Alpha")

    cluster.wait_converged(names, [alpha], timeout=20)
    periodic = SyncRun.objects.filter(node__name__in=names, trigger="periodic")
    assert sum("installed Alpha 1.0.0" in run.actions for run in periodic) == 2  # one on each node
    assert all(cluster.agents[n].alive for n in names)


def test_it_refuses_a_second_agent_on_a_claimed_folder(cluster: Cluster) -> None:
    [first] = cluster.start(1)
    storage = cluster.storage(first)

    second = manage("run_node", "--name", cluster.name(2), "--storage", str(storage.root), timeout=60)

    assert second.returncode != 0
    assert f"in use by the running agent of node {first}" in second.stderr
    assert cluster.agents[first].alive
    assert not Node.objects.filter(name=cluster.name(2), last_heartbeat__gt=timezone.now()).exists()

    cluster.agents[first].stop()  # SIGTERM: a clean stop
    assert cluster.agents[first].proc.returncode == 0  # type: ignore[union-attr]
    assert Node.objects.get(name=first).sync_lock_owner == ""


def test_it_ignores_a_shutdown_sent_through_the_broker(cluster: Cluster, import_package: Importer) -> None:
    """Broker access is not a licence to stop agents: their workers take no remote control commands."""
    [name] = cluster.start(1)
    worker = f"{name}@{socket.gethostname()}"
    # Commands sent before the worker listens would be lost whatever its setting: wait until it is up.
    wait_for(lambda: f"{worker} ready." in cluster.agents[name].output(), timeout=30, what=f"{worker}'s worker")

    celery_app.control.shutdown(destination=[worker])
    celery_app.control.broadcast("shutdown", destination=[worker])
    assert celery_app.control.ping(destination=[worker], timeout=2) == []  # nobody listens for commands

    alpha = import_package("Alpha")
    cluster.wait_converged([name], [alpha], timeout=30)  # the nudge still reaches it: it still syncs
    assert cluster.agents[name].alive, cluster.agents[name].output()
    assert SyncRun.objects.filter(node__name=name, trigger=SyncRun.Trigger.NUDGE).exists()
