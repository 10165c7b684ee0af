"""Faults in a real cluster: gunicorn, node agents and a broker as processes, killed and restarted.

Promises (reliability.md, Faults): the agent dies at any point of a sync → on restart the node has
the old version intact or the new one complete, and reports exactly that; the broker down when an
import commits → the import commits, nodes converge on their periodic pass; lost database
connections → the agents recover; a hung sync past its deadline is failed and the node's lock
released; a node offline during a removal removes it when back; a node that stops reporting is
shown offline, never installed.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from extadmin.importing import ImportItem, package_import
from extadmin.models import ExtensionPackage
from extadmin.operations import Actor
from extadmin.removal import package_remove
from extadmin.storage import NodeStorage
from nodes.models import Node, SyncRun, SyncState
from nodes.reconcile import reconcile
from tests.disk import leftovers
from tests.packages import build_package
from tests.processes import manage, wait_for
from tests.reliability.harness import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def _import(path: Path, storage: NodeStorage) -> ExtensionPackage:
    (result,) = package_import(items=[ImportItem(path=path)], actor=Actor(), node_name="web", storage_root=storage.root)
    return ExtensionPackage.objects.select_related("archive").get(pk=result.package.pk)


# --- the agent killed at each step of a sync -------------------------------------------------

SYNC_POINTS = ["sync.after_fetch", "sync.after_unzip", "sync.after_swap", "sync.before_remove"]


@pytest.mark.parametrize("point", SYNC_POINTS)
def test_it_leaves_the_old_version_or_the_new_one_complete_when_the_agent_is_killed(
    point, cluster, web_storage, pkgdir
):
    name = cluster.node(1)
    storage = cluster.storage(name)
    old = _import(build_package(pkgdir, "Torn", "1.0.0"), web_storage)
    assert reconcile(node_name=name, storage_root=storage.root, trigger="manual", verify_contents=True).ok
    old_manifest, old_sha = old.archive.manifest, old.sha256
    if point == "sync.before_remove":
        package_remove(name="Torn", node_name="web", storage_root=web_storage.root)
        new = None
    else:
        new = _import(build_package(pkgdir, "Torn", "2.0.0"), web_storage)

    agent = cluster.agent(name, EXTADMIN_FAULTS=f"{point}=kill").start()
    wait_for(lambda: not agent.alive, timeout=60, what=f"the agent to die at {point}")
    assert agent.proc.returncode == -9, agent.output()

    chk = storage.read_chk("Torn")
    if chk == old_sha:
        assert storage.verify("Torn", old_manifest, contents=True) is None, "the old version is not intact"
        expect_old = True
    else:
        assert new is not None and chk == new.sha256, f"neither version: {chk}"
        assert storage.verify("Torn", new.archive.manifest, contents=True) is None, "the new version is incomplete"
        expect_old = False
    assert expect_old == (point in ("sync.after_fetch", "sync.after_unzip", "sync.before_remove"))
    assert cluster.false_installed([name]) == []

    cluster.agent(name).start()  # restarted without the fault: its startup sync finishes the job

    cluster.wait_converged([name], timeout=60)
    # A removal is converged once its folder is gone; the same pass then deletes what it retired.
    wait_for(lambda: leftovers(storage) == [], timeout=30, what=f"no leftovers on {name}: {leftovers(storage)}")
    assert cluster.false_installed([name]) == []
    wait_for(lambda: not SyncRun.objects.filter(node__name=name, outcome=SyncRun.Outcome.RUNNING).exists(),
             timeout=30, what="the startup sync to finish")


# --- uploads through gunicorn, the broker down, a node offline --------------------------------


def test_it_converges_every_node_on_an_upload_through_gunicorn(cluster, token, pkgdir):
    names = cluster.start_agents(3)
    cluster.start_web()
    wait_for(lambda: Node.objects.filter(name__in=names, last_heartbeat__isnull=False).count() == 3, timeout=60)

    status, body = cluster.upload(build_package(pkgdir, "Alpha", "1.0.0"), token)
    assert status == 201, body
    status, body = cluster.upload(build_package(pkgdir, "Beta", "1.0.0", depends_on="Alpha:1.0.0"), token)
    assert status == 201, body

    # The periodic pass is a minute away: the nudges through the broker did this.
    cluster.wait_converged([*names, cluster.web_name], timeout=60)
    assert list(Path(cluster.tmp / "upload-tmp").iterdir()) == []


def test_it_commits_while_the_broker_is_down_and_converges_on_the_periodic_pass(cluster, broker, token, pkgdir):
    if broker is None:
        pytest.skip("needs redis-server for a private broker")
    names = cluster.start_agents(2, EXTADMIN_SYNC_INTERVAL="2")
    cluster.start_web()
    wait_for(lambda: Node.objects.filter(name__in=names, last_heartbeat__isnull=False).count() == 2, timeout=60)

    broker.stop()
    status, body = cluster.upload(build_package(pkgdir, "Outage", "1.0.0"), token)

    assert status == 201, body  # the import does not depend on the broker
    cluster.wait_converged(names, timeout=60)

    broker.start()  # back: the agents' workers reconnect, and nudges work again
    status, body = cluster.upload(build_package(pkgdir, "After", "1.0.0"), token)
    assert status == 201, body
    cluster.wait_converged(names, timeout=60)
    assert all(cluster.agents[n].alive for n in names)


def test_it_removes_on_a_node_that_was_offline_during_the_removal(cluster, token, pkgdir):
    names = cluster.start_agents(2)
    cluster.start_web()
    assert cluster.upload(build_package(pkgdir, "Gone", "1.0.0"), token)[0] == 201
    cluster.wait_converged(names, timeout=60)

    cluster.agents[names[1]].kill()
    status, body = cluster.delete("Gone", token)
    assert status in (200, 204), body
    cluster.wait_converged(names[:1], timeout=60)
    assert cluster.storage(names[1]).installed_names() == ["Gone"]  # it was away

    cluster.agent(names[1]).start()

    cluster.wait_converged(names, timeout=60)
    assert cluster.storage(names[1]).installed_names() == []
    assert not SyncState.objects.filter(package_name="Gone").exists()


def test_it_shows_a_node_that_stopped_reporting_offline_never_installed(cluster, web_storage, pkgdir):
    _import(build_package(pkgdir, "Shown", "1.0.0"), web_storage)
    names = cluster.start_agents(2)
    cluster.wait_converged(names, timeout=60)

    cluster.agents[names[1]].kill()
    time.sleep(3.5)  # three heartbeat intervals

    env = cluster.child_env(EXTADMIN_HEARTBEAT_INTERVAL="1")
    doc = json.loads(manage("cluster_status", "--json", env=env).stdout)
    nodes = {n["name"]: n["online"] for n in doc["nodes"]}
    assert nodes[names[0]] is True and nodes[names[1]] is False
    [ext] = [e for e in doc["extensions"] if e["name"] == "Shown"]
    assert ext["nodes"][names[1]]["state"] == "offline"
    assert ext["nodes"][names[0]]["state"] == "installed"

    cluster.agents[names[0]].kill()
    time.sleep(3.5)
    doc = json.loads(manage("cluster_status", "--json", env=env).stdout)
    [ext] = [e for e in doc["extensions"] if e["name"] == "Shown"]
    agents = {k: v for k, v in ext["nodes"].items() if k in names}
    assert {v["state"] for v in agents.values()} == {"offline"}
    # Only the web node (this test process's, never heartbeating) and two silent agents: not converged.
    assert ext["converged"] is False


# --- the hung sync ------------------------------------------------------------------------------


def test_it_fails_a_hung_sync_past_its_deadline_and_releases_the_lock(cluster, web_storage, pkgdir):
    package = _import(build_package(pkgdir, "Stuck", "1.0.0"), web_storage)
    name = cluster.node(1)
    hung = cluster.agent(name, EXTADMIN_FAULTS="sync.after_fetch=hang", EXTADMIN_SYNC_DEADLINE="3").start()
    wait_for(lambda: SyncState.objects.filter(node__name=name, state=SyncState.State.SYNCING).exists(),
             timeout=60, what="the sync to hang")
    time.sleep(3.5)  # past the deadline

    # The next sync takes the node's lease over and fails the hung one, instead of waiting forever
    # behind it (the hung process still holds the package's file lock: only its death frees that).
    started = time.monotonic()
    r = manage("sync_node", "--name", name, "--storage", str(cluster.storage(name).root),
               env=cluster.child_env(EXTADMIN_SYNC_DEADLINE="3"), timeout=60)
    assert time.monotonic() - started < 30
    assert r.returncode == 1 and "error: sync of" in r.stderr, r.stdout + r.stderr
    hung_run = SyncRun.objects.filter(node__name=name, trigger=SyncRun.Trigger.STARTUP).get()
    assert hung_run.outcome == SyncRun.Outcome.TIMED_OUT and "deadline" in hung_run.error
    assert Node.objects.get(name=name).sync_lock_owner == ""  # the node's lock is free
    state = SyncState.objects.get(node__name=name, package_name="Stuck")
    assert state.state == SyncState.State.FAILED and "lock" in state.error and "deadline" in state.error
    assert cluster.false_installed([name]) == []

    hung.kill()  # what a supervisor does with a process stuck past its deadline
    cluster.agent(name).start()
    cluster.wait_converged([name], timeout=60)
    assert cluster.holds(name, package)


# --- lost database connections ------------------------------------------------------------------


def _terminate_other_backends() -> int:
    with connection.cursor() as c:
        c.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return c.fetchone()[0]


def test_it_recovers_when_the_database_drops_or_blocks_connections_while_agents_run(cluster, token, pkgdir):
    """PostgreSQL: every client connection is terminated, again and again, while imports and syncs run.
    SQLite (no server to cut connections from): the database is write-locked for seconds instead."""
    names = cluster.start_agents(2, EXTADMIN_SYNC_INTERVAL="1")
    cluster.start_web()
    cluster.wait_converged(names, timeout=60)
    if connection.vendor == "postgresql":
        _cut_connections_during_imports(cluster, token, pkgdir)
    else:
        _write_lock_during_an_import(cluster, token, pkgdir)
    cluster.wait_converged([*names, cluster.web_name], timeout=60)
    assert all(cluster.agents[n].alive for n in names)
    assert cluster.web.alive


def _cut_connections_during_imports(cluster, token, pkgdir) -> None:
    killed = rounds = 0
    for i in range(5):
        killed += _terminate_other_backends()
        status, body = cluster.upload(build_package(pkgdir, f"Cut{i}", "1.0.0"), token)
        assert status == 201, body
        for _ in range(3):  # while the agents sync what was just imported
            time.sleep(0.2)
            killed += _terminate_other_backends()
        rounds += 4
    assert killed > 0
    print(f"database: {killed} client backends terminated in {rounds} rounds")
    if _can_restart_postgresql():
        _restart_postgresql()
        status, body = cluster.upload(build_package(pkgdir, "AfterRestart", "1.0.0"), token)
        assert status == 201, body
        print("database: PostgreSQL restarted while the agents ran")


def _can_restart_postgresql() -> bool:
    # CI and developers' machines run the local server as root; elsewhere cutting connections stands in.
    host = connection.settings_dict.get("HOST") or "127.0.0.1"
    return os.geteuid() == 0 and shutil.which("pg_ctlcluster") is not None and host in {"127.0.0.1", "localhost"}


def _restart_postgresql() -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True, timeout=120, capture_output=True,
    )
    connection.close()  # this test's own connection died with the server
    wait_for(lambda: subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode == 0, timeout=60)


def _write_lock_during_an_import(cluster, token, pkgdir) -> None:
    db = sqlite3.connect(connection.settings_dict["NAME"], timeout=30, isolation_level=None)
    results: list[tuple[int, object]] = []

    def upload() -> None:
        results.append(cluster.upload(build_package(pkgdir, "Locked", "1.0.0"), token))

    db.execute("BEGIN IMMEDIATE")  # the write lock: every writer waits
    uploader = threading.Thread(target=upload)
    uploader.start()
    time.sleep(4)
    db.execute("COMMIT")
    db.close()
    uploader.join(timeout=120)
    assert results and results[0][0] == 201, results


# --- RabbitMQ (the machine's own broker: used, never stopped) ---------------------------------

RABBITMQ = os.environ.get("EXTADMIN_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672//")


def _rabbitmq_up() -> bool:
    import socket
    from urllib.parse import urlparse

    url = urlparse(RABBITMQ)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 5672), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _rabbitmq_up(), reason="no RabbitMQ on this machine")
def test_it_converges_through_rabbitmq_and_a_killed_agent_catches_up(tmp_path, web_storage, token, pkgdir, settings):
    settings.EXTADMIN_HEARTBEAT_INTERVAL = 1.0
    c = Cluster(tmp=tmp_path, broker_url=RABBITMQ)
    try:
        names = c.start_agents(2)
        c.start_web()
        assert c.upload(build_package(pkgdir, "Rabbit", "1.0.0"), token)[0] == 201
        c.wait_converged(names, timeout=60)  # the periodic pass is a minute away: nudges did it

        c.agents[names[1]].kill()
        assert c.upload(build_package(pkgdir, "Rabbit", "1.1.0"), token)[0] == 201
        c.wait_converged(names[:1], timeout=60)
        c.agent(names[1]).start()  # its queued nudge and its startup sync both bring it up to date
        c.wait_converged(names, timeout=60)
    finally:
        c.stop_all()
        from kombu import Connection

        with Connection(RABBITMQ) as conn, conn.channel() as channel:
            for name in [*c.agents, c.web_name]:
                try:
                    channel.queue_delete(f"node.{name}")
                except Exception:  # noqa: S112 (never declared)
                    continue


# --- one storage per node; nudges duplicated, reordered; removals racing syncs --------------------


def test_it_refuses_a_second_agent_on_the_same_extensions_folder(cluster):
    first = cluster.node(1)
    cluster.agent(first).start()
    wait_for(lambda: Node.objects.filter(name=first, last_heartbeat__isnull=False).exists(), timeout=60)

    other = cluster.node(2)
    r = manage("run_node", "--name", other, "--storage", str(cluster.storage(first).root), env=cluster.child_env(),
               timeout=60)

    assert r.returncode == 1
    assert r.stderr.startswith("error: start: storage") and first in r.stderr, r.stderr
    assert cluster.agents[first].alive


def test_it_never_mass_deletes_while_removals_race_syncs_and_nudges_repeat(cluster, token, pkgdir):
    names = cluster.start_agents(2, EXTADMIN_SYNC_INTERVAL="0.5")
    cluster.start_web()
    keep = [f"Keep{i}" for i in range(4)]
    for name in [*keep, "Drop"]:
        assert cluster.upload(build_package(pkgdir, name, "1.0.0"), token)[0] == 201
    cluster.wait_converged(names, timeout=60)

    # Watch every node's disk while the removal races the periodic passes and a burst of nudges,
    # duplicated and out of order (some older than the node's last sync, some newer).
    seen_missing: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for n in names:
                held = set(cluster.storage(n).installed_names())
                seen_missing.extend(f"{n}:{k}" for k in keep if k not in held)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    burst = (
        "import random; from datetime import timedelta; from django.utils import timezone;"
        "from nodes.tasks import node_sync; from nodes.services import node_queue;"
        f"names = {names!r}; now = timezone.now()\n"
        "for i in range(40):\n"
        "    n = random.choice(names); at = now + timedelta(seconds=random.uniform(-30, 5))\n"
        "    node_sync.apply_async(kwargs={'node_name': n, 'requested_at': at.isoformat()}, queue=node_queue(n))"
    )
    try:
        r = manage("shell", "-c", burst, env=cluster.child_env())
        assert r.returncode == 0, r.stderr
        assert cluster.delete("Drop", token)[0] in (200, 204)
        cluster.wait_converged(names, timeout=60)
        time.sleep(1.5)  # a few more passes and nudges with the removal behind them
    finally:
        stop.set()
        watcher.join()

    assert seen_missing == [], f"packages disappeared from a node: {sorted(set(seen_missing))[:5]}"
    assert all(sorted(cluster.storage(n).installed_names()) == keep for n in names)
    failed = SyncRun.objects.filter(node__name__in=names, outcome=SyncRun.Outcome.FAILED)
    assert not failed.exists(), list(failed.values_list("trigger", "error", "actions"))


def test_it_survives_the_web_server_killed_mid_upload(cluster, token, pkgdir):
    """gunicorn SIGKILLed while its worker imports (hung inside the transaction): nothing half-visible."""
    from extadmin.models import Operation

    names = cluster.start_agents(1)
    cluster.start_web(EXTADMIN_FAULTS="import.after_persist=hang")
    path = build_package(pkgdir, "Midway", "1.0.0")
    outcome: list[object] = []

    def upload() -> None:
        try:
            outcome.append(cluster.upload(path, token, timeout=60))
        except Exception as exc:
            outcome.append(exc)

    client = threading.Thread(target=upload)
    client.start()
    wait_for(lambda: Operation.objects.filter(package_name="Midway").exists(), timeout=60, what="the import")
    time.sleep(1)  # inside step 3, its transaction open
    cluster.web.kill()  # the orphaned worker stays a zombie for seconds here: it must still count as dead
    client.join(timeout=60)

    assert outcome and not (isinstance(outcome[0], tuple) and outcome[0][0] == 201), outcome
    assert not ExtensionPackage.objects.filter(name="Midway").exists()
    assert not SyncState.objects.filter(package_name="Midway").exists()
    assert cluster.storage(names[0]).installed_names() == []

    cluster.start_web()  # restarted without the fault, same node and storage
    status, body = cluster.upload(path, token)

    assert status == 201, body
    cluster.wait_converged([*names, cluster.web_name], timeout=60)
    assert leftovers(cluster.storage(cluster.web_name)) == []
    killed = Operation.objects.filter(package_name="Midway").order_by("started_at", "id").first()
    assert killed.outcome == Operation.Outcome.INTERRUPTED, list(Operation.objects.values_list("pid", "outcome"))
