"""Every node has its own storage folder: an import refuses one that another node claimed."""
from __future__ import annotations

from pathlib import Path

import pytest

from extadmin.models import ExtensionPackage
from extadmin.packaging import Refusal
from extadmin.storage import NodeStorage
from nodes.agent import storage_claim
from tests.extadmin.conftest import import_path
from tests.packages import build_package

pytestmark = pytest.mark.django_db


def test_it_refuses_to_import_into_storage_that_belongs_to_another_node(
    node_storage: NodeStorage, pkgdir: Path
) -> None:
    storage_claim(storage=node_storage, node_name="someone-else", exclusive=False).release()
    with pytest.raises(Refusal) as refused:
        import_path(build_package(pkgdir, "Claimed"))
    assert refused.value.step == "storage"
    assert "belongs to node someone-else" in refused.value.reason
    assert not ExtensionPackage.objects.exists()
    assert not node_storage.package_dir("Claimed").exists()


def test_it_claims_fresh_storage_for_the_importing_node(node_storage: NodeStorage, pkgdir: Path) -> None:
    import_path(build_package(pkgdir, "Mine"))
    with pytest.raises(Refusal, match="belongs to node web"):
        storage_claim(storage=node_storage, node_name="intruder", exclusive=False)
