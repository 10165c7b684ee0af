"""Every node has its own storage folder: an import refuses one that another node claimed."""
from __future__ import annotations

from pathlib import Path

import pytest

from extadmin.claim import storage_claim
from extadmin.models import ExtensionPackage
from extadmin.packaging import Refusal
from extadmin.storage import NodeStorage
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


# --- an extensions folder reached through a link -----------------------------------------------


def _linked_to(tmp_path: Path, owner: NodeStorage, name: str) -> NodeStorage:
    """A storage whose ``extensions/`` is a symbolic link to ``owner``'s."""
    other = NodeStorage(tmp_path / "storage" / name)
    other.root.mkdir(parents=True)
    owner.extensions.mkdir(parents=True, exist_ok=True)
    other.extensions.symlink_to(owner.extensions)
    return other


@pytest.mark.parametrize("exclusive", [False, True], ids=["check", "agent"])
def test_it_refuses_an_extensions_folder_linked_to_another_nodes(tmp_path: Path, exclusive: bool) -> None:
    n1 = NodeStorage(tmp_path / "storage" / "n1")
    storage_claim(storage=n1, node_name="n1", exclusive=False).release()
    n2 = _linked_to(tmp_path, n1, "n2")

    with pytest.raises(Refusal) as refused:
        storage_claim(storage=n2, node_name="n2", exclusive=exclusive)

    assert refused.value.reason.startswith(
        f"storage {n2.root}: its extensions folder is a link to {n1.extensions}, which belongs to node n1"
    )
    assert not (n2.work / "node").exists()


def test_it_claims_the_folder_a_link_leads_to_so_its_own_node_is_refused_later(tmp_path: Path) -> None:
    n1 = NodeStorage(tmp_path / "storage" / "n1")
    n2 = _linked_to(tmp_path, n1, "n2")
    storage_claim(storage=n2, node_name="n2", exclusive=False).release()  # n1 never claimed it

    with pytest.raises(Refusal, match=f"storage {n1.root} belongs to node n2"):
        storage_claim(storage=n1, node_name="n1", exclusive=False)


def test_it_accepts_an_extensions_folder_linked_inside_its_own_storage(tmp_path: Path) -> None:
    mine = NodeStorage(tmp_path / "storage" / "n1")
    (mine.root / "real-extensions").mkdir(parents=True)
    mine.extensions.symlink_to(mine.root / "real-extensions")

    storage_claim(storage=mine, node_name="n1", exclusive=True).release()


def test_it_refuses_to_import_into_an_extensions_folder_linked_to_another_nodes(
    tmp_path: Path, node_storage: NodeStorage, pkgdir: Path
) -> None:
    n1 = NodeStorage(tmp_path / "storage" / "n1")
    storage_claim(storage=n1, node_name="n1", exclusive=False).release()
    n1.extensions.mkdir()
    node_storage.root.mkdir(parents=True)
    node_storage.extensions.symlink_to(n1.extensions)

    with pytest.raises(Refusal) as refused:
        import_path(build_package(pkgdir, "Shared"))

    assert refused.value.step == "storage"
    assert "which belongs to node n1" in refused.value.reason
    assert not ExtensionPackage.objects.exists()
    assert list(n1.extensions.iterdir()) == []
