"""A node's pass and a quarantined checksum: never installed, never removed, and a holder is flagged."""
from __future__ import annotations

from pathlib import Path

import pytest
from rest_framework.test import APIClient

from extadmin.quarantine import package_quarantine
from extadmin.storage import NodeStorage
from nodes.models import SyncState
from nodes.status import cluster_document, package_nodes_document
from tests.nodes.conftest import Importer, Syncer
from tests.packages import folder_files, zip_files

pytestmark = pytest.mark.django_db


def _state(node: str, name: str) -> SyncState:
    return SyncState.objects.get(node__name=node, package_name=name)


def test_it_does_not_install_a_quarantined_version_and_keeps_the_one_it_had(
    import_package: Importer, sync: Syncer, n1: NodeStorage
) -> None:
    v1 = import_package("Alpha", "1.0.0")
    sync()
    import_package("Alpha", "2.0.0")
    package_quarantine(name="Alpha", version="2.0.0", reason="crashes the platform")

    result = sync()

    assert n1.read_chk("Alpha") == v1.sha256  # not installed, and not removed either
    state = _state("n1", "Alpha")
    assert (state.state, state.error, state.installed_version) == (
        "quarantined", "not installed: 2.0.0 is quarantined", "1.0.0",
    )
    assert result.actions == ["Alpha: not installed: 2.0.0 is quarantined"]
    assert sync().actions == []  # said once, not at every pass


def test_it_flags_a_node_that_holds_the_quarantined_bytes_on_every_door(
    import_package: Importer, sync: Syncer, n1: NodeStorage, pkgdir: Path, admin_user
) -> None:
    import_package("Alpha", "1.0.0")
    v2 = import_package("Alpha", "2.0.0")
    sync()
    files = folder_files(n1.package_dir("Alpha"), skip="Alpha.chk")
    package_quarantine(name="Alpha", version="2.0.0", reason="leaks")

    sync()

    assert n1.read_chk("Alpha") == v2.sha256  # never removed
    assert folder_files(n1.package_dir("Alpha"), skip="Alpha.chk") == files
    cells = cluster_document()["extensions"][0]["nodes"]
    assert (cells["n1"]["state"], cells["n1"]["error"], cells["n1"]["up_to_date"]) == (
        "quarantined", "holds quarantined 2.0.0", False,
    )
    doc = package_nodes_document(package=v2)
    assert not doc["converged"]
    api = APIClient()
    api.force_authenticate(admin_user)
    api_cells = {n["node"]: n for n in api.get("/api/extensions/Alpha/").json()["nodes"]}
    assert (api_cells["n1"]["state"], api_cells["n1"]["error"]) == ("quarantined", "holds quarantined 2.0.0")


def test_it_goes_back_to_the_good_version_after_a_quarantine_with_rollback(
    import_package: Importer, sync: Syncer, n1: NodeStorage, pkgdir: Path
) -> None:
    import_package("Alpha", "1.0.0")
    import_package("Alpha", "2.0.0")
    sync()
    package_quarantine(name="Alpha", version="2.0.0", reason="leaks", rollback=True)

    sync()

    state = _state("n1", "Alpha")
    assert (state.state, state.installed_version) == ("installed", "1.0.0")
    assert folder_files(n1.package_dir("Alpha"), skip="Alpha.chk") == zip_files(pkgdir / "Alpha-1.0.0.zip")
