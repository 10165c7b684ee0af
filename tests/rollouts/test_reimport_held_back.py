"""Importing the same bytes again on a node its rollout holds back (found by the state machine).

The import unzips into its own node's folder; on a node still waiting for its batch that put the new
version there outside the rollout (one more node changing, a waiting node holding the new bytes).
It is refused, naming the node and why it waits; the node keeps the previous version.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from extadmin.importing import ImportItem, package_import
from extadmin.models import ExtensionPackage
from extadmin.packaging import Conflict
from nodes.models import SyncState
from rollouts.services import rollouts_status
from tests.rollouts.conftest import Nodes

pytestmark = pytest.mark.django_db


def test_the_same_bytes_imported_again_on_a_waiting_node_are_refused_and_it_keeps_the_previous_version(
    nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage], pkgdir: Path,
) -> None:
    cluster = nodes(3)
    v1 = import_with("Pump", "1.0.0")
    cluster.sync_all()
    before = cluster.files("n3", "Pump")
    v2 = import_with("Pump", "2.0.0", rollout={"canary": "n1", "batch": 1})
    [r] = rollouts_status("Pump")["rollouts"]
    assert r["nodes"]["n3"] == "waiting"

    again = pkgdir / "Pump-2.0.0.zip"  # the very file import_with imported: the same bytes
    with pytest.raises(Conflict) as refused:
        package_import(items=[ImportItem(path=again)], node_name="n3", storage_root=cluster.storage("n3").root)
    assert refused.value.step == "rollout"
    assert refused.value.reason == (
        "Pump 2.0.0 is being rolled out and node n3 holds the previous version (waiting for batch 2): "
        "import it on an admitted node, or resume or abort the rollout")
    assert cluster.chk("n3", "Pump") == v1.sha256 and cluster.files("n3", "Pump") == before
    assert ExtensionPackage.objects.get(name="Pump").sha256 == v2.sha256
    assert not SyncState.objects.filter(node__name="n3", package_name="Pump", installed_sha256=v2.sha256).exists()
    [r] = rollouts_status("Pump")["rollouts"]
    assert r["nodes"]["n3"] == "waiting" and r["state"] == "running"

    # On a node the rollout admitted (the canary), the same bytes again are an ordinary re-import.
    [done] = package_import(items=[ImportItem(path=again)], node_name="n1", storage_root=cluster.storage("n1").root)
    assert done.package is not None and done.package.sha256 == v2.sha256
