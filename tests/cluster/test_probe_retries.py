"""The health probe and retries that stop, on real agents (``run_node`` processes) with a real probe.

Three agents; the probe fails on the third node only, for version 2.0.0 only. That node puts 1.0.0
back byte for byte, retries with backoff (its agent wakes for the retry, far sooner than its 60 s
periodic pass), gives up, and stays given up until an operator's "retry now" through the API; the
other two install 2.0.0. "Sync now" reaches a node's agent through the broker.
"""
from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User

from extadmin.models import Operation
from nodes.models import SyncRun, SyncState
from nodes.status import cluster_document
from tests.cluster.conftest import Cluster
from tests.nodes.conftest import Importer
from tests.processes import wait_for
from tests.semantics.support import make_user, token_client

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

PROBE = """#!/bin/sh
echo "$EXTADMIN_NODE $EXTADMIN_VERSION" >> "{dir}/probe.log"
if [ "$EXTADMIN_NODE" = "$BAD_NODE" ] && [ "$EXTADMIN_VERSION" = "2.0.0" ] && [ ! -e "{dir}/healthy" ]; then
  echo "$EXTADMIN_NODE refuses $EXTADMIN_PACKAGE $EXTADMIN_VERSION: the platform did not load it" >&2
  exit 1
fi
"""


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def probe_runs(tmp: Path, line: str) -> int:
    log = tmp / "probe.log"
    return log.read_text().splitlines().count(line) if log.exists() else 0


def test_it_reverts_retries_gives_up_and_retries_now_on_real_agents(
    cluster: Cluster, import_package: Importer, tmp_path: Path,
) -> None:
    script = tmp_path / "probe.sh"
    script.write_text(PROBE.replace("{dir}", str(tmp_path)))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    n1, n2, n3 = cluster.name(1), cluster.name(2), cluster.name(3)
    names = cluster.start(
        3, EXTADMIN_HEALTH_PROBE=str(script), BAD_NODE=n3, EXTADMIN_SYNC_RETRIES="2",
        EXTADMIN_SYNC_RETRY_BACKOFF="0.5",
    )
    v1 = import_package("Alpha", "1.0.0")
    cluster.wait_converged(names, [v1])
    before = hashes(cluster.storage(n3).package_dir("Alpha"))

    v2 = import_package("Alpha", "2.0.0")
    cluster.wait_converged([n1, n2], [v2])

    def gave_up() -> bool:
        s = SyncState.objects.filter(node__name=n3, package_name="Alpha").first()
        return s is not None and s.state == "failed" and s.failures == 3 and s.next_retry_at is None

    wait_for(gave_up, timeout=30, what=f"{n3} to give up on Alpha 2.0.0")
    words = f"health probe exit 1: {n3} refuses Alpha 2.0.0: the platform did not load it"
    state = SyncState.objects.get(node__name=n3, package_name="Alpha")
    assert (state.error, state.desired_sha256, state.installed_sha256) == (words, v2.sha256, v1.sha256)
    assert hashes(cluster.storage(n3).package_dir("Alpha")) == before  # 1.0.0, byte for byte
    assert cluster.storage(n3).read_chk("Alpha") == v1.sha256
    assert not list((cluster.storage(n3).work / "retired").glob("*"))
    cell = cluster_document()["extensions"][0]["nodes"][n3]
    assert (cell["state"], cell["error"], cell["version"], cell["retry"]) == (
        "failed", words, "1.0.0", "gave up after 2 retries",
    )
    assert probe_runs(tmp_path, f"{n3} 2.0.0") == 3  # the first try and two retries, no more
    # The other nodes were never held back by n3.
    assert probe_runs(tmp_path, f"{n1} 2.0.0") == probe_runs(tmp_path, f"{n2} 2.0.0") == 1

    operator = make_user("olga")
    operator.groups.add(Group.objects.get(name="operator"))
    api = token_client(User.objects.get(pk=operator.pk))
    # Sync now: the agent's pass follows the rule, so a node that gave up still leaves it alone.
    runs = SyncRun.objects.filter(node__name=n3, trigger="nudge").count()
    assert api.post(f"/api/nodes/{n3}/sync/").json()["message"] == f"node {n3} syncs now"
    wait_for(lambda: SyncRun.objects.filter(node__name=n3, trigger="nudge").count() > runs, timeout=20,
             what=f"{n3}'s agent to run the nudged pass")
    assert probe_runs(tmp_path, f"{n3} 2.0.0") == 3 and gave_up()

    (tmp_path / "healthy").touch()  # the operator fixed what the probe checks
    response = api.post(f"/api/nodes/{n3}/retry/")
    assert response.status_code == 200 and response.json()["packages"] == ["Alpha"]
    cluster.wait_converged(names, [v2], timeout=20)  # the nudge, not the 60 s periodic pass
    assert probe_runs(tmp_path, f"{n3} 2.0.0") == 4
    installed = SyncState.objects.get(node__name=n3, package_name="Alpha")
    assert (installed.failures, installed.next_retry_at, installed.error) == (0, None, "")
    kinds = list(Operation.objects.filter(node=n3).values_list("kind", "username").order_by("started_at"))
    assert kinds == [("sync_now", "olga"), ("retry", "olga")]
