"""Issue 12's "done when", with the health probe as the failure: four real agents, node 3's probe fails.

``import_extension v2 --canary n1 --batch 1 --max-failures 1`` ends ``halted`` naming n3 and its
probe's words; n3 holds v1 byte for byte; n4 was never touched; ``rollout_abort`` puts n1 and n2
back on v1.
"""
from __future__ import annotations

import stat
from pathlib import Path

import pytest

from nodes.models import SyncRun
from tests.cluster.conftest import Cluster
from tests.cluster.test_rollouts import _files, _import, _status
from tests.processes import run_command, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

PROBE = """#!/bin/sh
if [ "$EXTADMIN_NODE" = "$BAD_NODE" ] && [ "$EXTADMIN_VERSION" = "2.0.0" ]; then
  echo "Pump 2.0.0 did not start on $EXTADMIN_NODE" >&2
  exit 1
fi
"""


def test_a_failing_probe_on_node_3_halts_the_canary_rollout_and_the_abort_restores_v1(
    cluster: Cluster, pkgdir: Path, tmp_path: Path,
) -> None:
    script = tmp_path / "probe.sh"
    script.write_text(PROBE)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    n1, n2, n3, n4 = (cluster.name(i) for i in range(1, 5))
    names = cluster.start(4, EXTADMIN_HEALTH_PROBE=str(script), BAD_NODE=n3)
    v1 = _import(pkgdir, "1.0.0")
    cluster.wait_converged(names, [v1])
    before = {n: _files(cluster.storage(n)) for n in names}
    last_run_of_n4 = SyncRun.objects.filter(node__name=n4).order_by("-id").values_list("id", flat=True).first()

    v2 = _import(pkgdir, "2.0.0", "--canary", n1, "--batch", "1", "--max-failures", "1")
    wait_for(lambda: _status()["state"] == "halted", timeout=90, what="the rollout to halt")

    r = _status()
    words = f"health probe exit 1: Pump 2.0.0 did not start on {n3}"
    assert r["reason"].endswith(f"1 node failed (max-failures 1): {n3}: {words}"), r["reason"]
    assert (r["nodes"][n1], r["nodes"][n2], r["nodes"][n3], r["nodes"][n4]) == (
        "installed", "installed", "failed", "waiting",
    )
    assert [cluster.storage(n).read_chk("Pump") for n in names] == [v2.sha256, v2.sha256, v1.sha256, v1.sha256]
    assert _files(cluster.storage(n3)) == before[n3]  # the probe's failure put 1.0.0 back, byte for byte
    assert _files(cluster.storage(n4)) == before[n4]
    later = SyncRun.objects.filter(node__name=n4, id__gt=last_run_of_n4)
    assert not [line for run in later for line in run.actions if "Pump" in line]  # n4 never acted on Pump

    code, _, err = run_command("rollout_abort", "Pump")
    assert code == 0, err
    wait_for(lambda: all(cluster.storage(n).read_chk("Pump") == v1.sha256 for n in names), timeout=90,
             what="the abort to put 1.0.0 back everywhere")
    assert {n: _files(cluster.storage(n)) for n in names} == before
