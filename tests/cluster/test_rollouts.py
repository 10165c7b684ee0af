"""Rollouts with real agents: separate processes, the real broker and database, real folders.

The test process imports on node ``web`` through the command line (``import_extension --canary
…``); each agent's own passes admit, install, fail, halt and activate. A failing node is an agent
started with ``EXTADMIN_FAULTS=sync.after_fetch=raise``: every install it tries fails there, before
its folder changes, as a bad signature or a failing probe would.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from extadmin.models import ExtensionPackage
from extadmin.storage import NodeStorage
from nodes.models import SyncRun, SyncState
from rollouts.models import Rollout, RolloutNode
from rollouts.services import rollouts_status
from tests.cluster.conftest import Cluster
from tests.packages import build_package, folder_files
from tests.processes import child_env, manage, run_command, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

FAIL = {"EXTADMIN_FAULTS": "sync.after_fetch=raise"}
CHANGING = ("waiting", "admitted", "staged")  # admitted, not yet installed nor failed


def _status(name: str = "Pump") -> dict:
    [r] = rollouts_status(name)["rollouts"]
    return r


def _files(storage: NodeStorage) -> dict[str, bytes]:
    return folder_files(storage.package_dir("Pump"))


def _restart(cluster: Cluster, name: str, **env: str) -> None:
    """Stop the agent, start it again with ``env``, and wait for the new one's startup pass."""
    last = SyncRun.objects.filter(node__name=name).order_by("-id").values_list("id", flat=True).first() or 0
    cluster.agents[name].stop()
    cluster.agent(name, **env).start()
    wait_for(lambda: SyncRun.objects.filter(node__name=name, trigger=SyncRun.Trigger.STARTUP, id__gt=last)
             .exclude(outcome=SyncRun.Outcome.RUNNING).exists(), timeout=60, what=f"{name} restarted")


def _import(pkgdir: Path, version: str, *options: str) -> ExtensionPackage:
    code, _, err = run_command("import_extension", str(build_package(pkgdir, "Pump", version)), *options)
    assert code == 0, err
    return ExtensionPackage.objects.get(name="Pump")


class Sampler:
    """Every distinct state of the cluster seen while a condition is awaited: how many agents were
    changing the package at once (admitted, not yet installed or failed; or a sync state syncing)."""

    def __init__(self, names: list[str]) -> None:
        self.names, self.seen, self.most = names, [], 0

    def sample(self) -> tuple:
        rollout = Rollout.objects.order_by("-id").first()
        rows = {n: (s, b) for n, s, b in RolloutNode.objects.filter(rollout=rollout, node__name__in=self.names)
                .values_list("node__name", "state", "batch")} if rollout else {}
        syncing = set(SyncState.objects.filter(node__name__in=self.names, package_name="Pump", state="syncing")
                      .values_list("node__name", flat=True))
        admitted = {n for n, (s, b) in rows.items() if rollout and b <= rollout.batch and s in CHANGING}
        snapshot = (rollout.state if rollout else None, rollout.batch if rollout else None,
                    tuple(sorted(rows.items())), tuple(sorted(syncing)))
        if not self.seen or self.seen[-1] != snapshot:
            self.seen.append(snapshot)
            self.most = max(self.most, len(admitted | syncing))
        return snapshot

    def until(self, condition: Callable[[], bool], *, timeout: float, what: str) -> None:
        def check() -> bool:
            self.sample()
            return condition()

        wait_for(check, timeout=timeout, interval=0.02, what=what)


def test_canary_then_batches_of_one_halts_on_the_failing_node_and_never_touches_the_rest(
    cluster: Cluster, pkgdir: Path,
) -> None:
    names = cluster.start(4)
    v1 = _import(pkgdir, "1.0.0")
    cluster.wait_converged(names, [v1])
    before = {n: _files(cluster.storage(n)) for n in names}
    n1, n2, n3, n4 = names
    _restart(cluster, n3, **FAIL)
    last_run_of_n4 = SyncRun.objects.filter(node__name=n4).order_by("-id").values_list("id", flat=True).first()

    sampler = Sampler(names)
    v2 = _import(pkgdir, "2.0.0", "--canary", n1, "--batch", "1", "--max-failures", "1")
    sampler.until(lambda: _status()["state"] == "halted", timeout=60, what="the rollout to halt")

    r = _status()
    assert r["reason"] == f"halted at batch 2: 1 node failed (max-failures 1): {n3}: fault injected at sync.after_fetch"
    assert r["nodes"] == {n1: "installed", n2: "installed", n3: "failed", n4: "waiting", "web": "installed"}
    assert sampler.most == 1, sampler.seen  # batch 1: never two agents changing at once
    assert [cluster.storage(n).read_chk("Pump") for n in names] == [v2.sha256, v2.sha256, v1.sha256, v1.sha256]
    assert _files(cluster.storage(n3)) == before[n3]  # its backout put 1.0.0 back, byte for byte
    assert _files(cluster.storage(n4)) == before[n4]
    n4_state = SyncState.objects.get(node__name=n4, package_name="Pump")
    assert (n4_state.state, n4_state.error) == ("waiting", "waiting for batch 3")
    later = SyncRun.objects.filter(node__name=n4, id__gt=last_run_of_n4)
    assert not [line for run in later for line in run.actions if "Pump" in line]  # n4 never acted on Pump

    code, out, _ = run_command("rollout_status", "Pump")
    assert code == 0 and f"{n3}: failed" in out and r["reason"] in out

    # Abort: the nodes that changed fetch 1.0.0 from the retained versions and put it back, byte for byte.
    code, out, err = run_command("rollout_abort", "Pump")
    assert code == 0, err
    wait_for(lambda: all(cluster.storage(n).read_chk("Pump") == v1.sha256 for n in names)
             and _status()["nodes"][n1] == _status()["nodes"][n2] == "reverted", timeout=60, what="the abort")
    assert {n: _files(cluster.storage(n)) for n in names} == before
    assert [SyncState.objects.get(node__name=n, package_name="Pump").state for n in names] == ["reverted"] * 4


def test_an_agent_killed_mid_install_and_a_console_killed_after_its_commit_do_not_stop_the_rollout(
    cluster: Cluster, pkgdir: Path,
) -> None:
    names = cluster.start(3, EXTADMIN_SYNC_INTERVAL="2")  # a periodic pass (and advance) every 2 s
    v1 = _import(pkgdir, "1.0.0")
    cluster.wait_converged(names, [v1])
    n2 = names[1]
    _restart(cluster, n2, EXTADMIN_SYNC_INTERVAL="2", EXTADMIN_FAULTS="sync.after_unzip=kill")

    # The console: a separate import process, killed right after its commit (no nudge, no advance).
    path = build_package(pkgdir, "Pump", "2.0.0")
    done = manage("import_extension", str(path), "--batch", "1",
                  env=child_env(EXTADMIN_NODE="web", EXTADMIN_STORAGE=str(cluster.storage("web").root),
                                EXTADMIN_FAULTS="import.after_commit=kill"))
    assert done.returncode == -9, done.stderr
    v2 = ExtensionPackage.objects.get(name="Pump")
    assert v2.version == "2.0.0"
    wait_for(lambda: not cluster.agents[n2].alive, timeout=60, what=f"{n2} to die mid-install")
    assert cluster.storage(n2).read_chk("Pump") == v1.sha256
    cluster.agent(n2, EXTADMIN_SYNC_INTERVAL="2").start()  # restarted, without the fault

    sampler = Sampler(names)
    sampler.until(lambda: _status()["state"] == "completed", timeout=90, what="the rollout to complete")
    assert sampler.most <= 1, sampler.seen
    cluster.wait_converged(names, [v2])


def test_together_mode_with_one_node_failing_to_stage_switches_none_and_halts_naming_it(
    cluster: Cluster, pkgdir: Path,
) -> None:
    names = cluster.start(3)
    v1 = _import(pkgdir, "1.0.0")
    cluster.wait_converged(names, [v1])
    bad = names[1]
    _restart(cluster, bad, **FAIL)

    switched: list[str] = []

    def halted() -> bool:
        switched.extend(n for n in names if cluster.storage(n).read_chk("Pump") != v1.sha256)
        return _status()["state"] == "halted"

    v2 = _import(pkgdir, "2.0.0", "--activation", "together")
    wait_for(halted, timeout=60, interval=0.02, what="the together rollout to halt")
    r = _status()
    assert r["reason"] == (f"halted before any node switched to 2.0.0: 1 failed to stage "
                           f"({bad}: fault injected at sync.after_fetch)")
    assert switched == []
    assert r["nodes"][bad] == "failed"
    time.sleep(2)  # a halted rollout stays put: nobody swaps later either
    assert all(cluster.storage(n).read_chk("Pump") == v1.sha256 for n in names)
    assert not any(cluster.storage(n).staged_path("Pump", v2.sha256).exists() for n in names)


def test_together_mode_activates_without_an_agent_killed_while_staging_which_follows_when_it_returns(
    cluster: Cluster, pkgdir: Path,
) -> None:
    names = cluster.start(3)
    v1 = _import(pkgdir, "1.0.0")
    cluster.wait_converged(names, [v1])
    *alive, victim = names
    _restart(cluster, victim, EXTADMIN_FAULTS="sync.after_fetch=kill")

    v2 = _import(pkgdir, "2.0.0", "--activation", "together")
    wait_for(lambda: not cluster.agents[victim].alive, timeout=60, what=f"{victim} to die while staging")
    # Once it is offline, every *online* admitted node is staged: those two switch, together.
    wait_for(lambda: _status()["state"] == "activating" and all(
        cluster.storage(n).read_chk("Pump") == v2.sha256 for n in alive), timeout=60, what="the activation")
    assert cluster.storage(victim).read_chk("Pump") == v1.sha256
    cluster.agent(victim).start()  # restarted without the fault: it installs, and the rollout completes
    wait_for(lambda: _status()["state"] == "completed", timeout=60, what="the together rollout to complete")
    cluster.wait_converged(names, [v2])
    rows = RolloutNode.objects.filter(rollout__version="2.0.0", node__name__in=alive)
    assert max(r.staged_at for r in rows) <= min(r.swapped_at for r in rows)  # no swap before all staged
