"""kill -9 during a rollout, real processes: an agent killed after its swap, before it reported.

The agent of the node admitted in batch 1 dies at ``sync.after_swap`` (the new folder in place, the
previous one waiting in retired/, nothing reported): the rollout must not move on without it, no node
outside the admitted batch may change, and once the agent is back the rollout completes.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import transaction

from extadmin.models import ExtensionPackage, Operation
from rollouts.models import Rollout, RolloutNode
from tests.cluster.conftest import Cluster
from tests.cluster.test_rollouts import Sampler, _files, _import, _restart, _status
from tests.processes import ROOT, Pause, child_env

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def test_an_agent_killed_after_its_swap_before_it_reported_holds_the_rollout_and_it_completes_after_restart(
    cluster: Cluster, pkgdir: Path,
) -> None:
    names = cluster.start(3, EXTADMIN_SYNC_INTERVAL="2")
    v1 = _import(pkgdir, "1.0.0")
    cluster.wait_converged(names, [v1])
    victim, *rest = sorted(names)  # batch 1 with the importing node: the first by name
    before = {n: _files(cluster.storage(n)) for n in rest}
    _restart(cluster, victim, EXTADMIN_SYNC_INTERVAL="2", EXTADMIN_FAULTS="sync.after_swap=kill")

    sampler = Sampler(names)
    v2 = _import(pkgdir, "2.0.0", "--batch", "1")
    rollout = Rollout.objects.get(package_name="Pump", version="2.0.0")
    assert RolloutNode.objects.get(rollout=rollout, node__name=victim).batch == rollout.batch == 1
    sampler.until(lambda: not cluster.agents[victim].alive, timeout=60, what=f"{victim} to die after its swap")

    # Dead before it reported: the rollout waits for it; nobody outside batch 1 changed.
    deadline = time.monotonic() + 6  # three of the others' periodic passes (every 2 s) come and go
    while time.monotonic() < deadline:
        sampler.sample()
        time.sleep(0.05)
    assert (_status()["state"], _status()["batch"]) == ("running", 1)
    assert _status()["nodes"][victim] in ("admitted", "waiting")
    assert {n: _files(cluster.storage(n)) for n in rest} == before
    assert all(cluster.storage(n).read_chk("Pump") == v1.sha256 for n in rest)

    cluster.agent(victim, EXTADMIN_SYNC_INTERVAL="2").start()  # back, without the fault
    sampler.until(lambda: _status()["state"] == "completed", timeout=120, what="the rollout to complete")
    assert sampler.most <= 1, sampler.seen
    cluster.wait_converged(names, [v2])
    assert ExtensionPackage.objects.get(name="Pump").sha256 == v2.sha256


def test_a_console_killed_in_the_middle_of_a_rollout_pause_changes_nothing_and_the_rollout_completes(
    cluster: Cluster, pkgdir: Path, tmp_path: Path,
) -> None:
    """``manage.py rollout_pause`` killed -9 inside its transaction (held on the rollout's row, which
    this test has locked): nothing of the pause is left, no audit row, and the rollout goes on."""
    names = cluster.start(3, EXTADMIN_SYNC_INTERVAL="2")
    v1 = _import(pkgdir, "1.0.0")
    cluster.wait_converged(names, [v1])
    first = sorted(names)[0]
    pause = Pause(tmp_path / "release")
    _restart(cluster, first, EXTADMIN_SYNC_INTERVAL="2", EXTADMIN_FAULTS=pause.at("sync.after_fetch"))
    sampler = Sampler(names)
    v2 = _import(pkgdir, "2.0.0", "--batch", "1")
    pause.wait_reached()  # batch 1 is installing: the rollout is running
    rollout = Rollout.objects.get(package_name="Pump", version="2.0.0")

    console = None
    with transaction.atomic():
        Rollout.objects.filter(pk=rollout.pk).update(reason="")  # a write lock on the rollout's row
        console = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "rollout_pause", "Pump"], cwd=ROOT, env=child_env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        time.sleep(3)  # started, and waiting on the row inside its own transaction
        os.kill(console.pid, signal.SIGKILL)
        _, err = console.communicate(timeout=30)
    assert console.returncode == -9, err  # killed, not finished nor failed on its own
    assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.RUNNING
    assert not Operation.objects.filter(kind=Operation.Kind.ROLLOUT_PAUSE).exists()

    pause.release()
    sampler.until(lambda: _status()["state"] == "completed", timeout=120, what="the rollout to complete")
    assert sampler.most <= 1, sampler.seen
    cluster.wait_converged(names, [v2])
