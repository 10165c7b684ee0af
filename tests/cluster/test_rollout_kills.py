"""kill -9 during a rollout, real processes: a console killed inside a control's transaction.

A kill at every other step of a rollout (the console's and the agents') is
``test_rollout_steps.py``'s.
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

from extadmin.models import Operation
from rollouts.models import Rollout
from tests.cluster.conftest import Cluster
from tests.cluster.test_rollouts import Sampler, _import, _restart, _status
from tests.processes import ROOT, Pause, child_env

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


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
