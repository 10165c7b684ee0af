"""Rollback and quarantine across real agents (separate ``run_node`` processes, the real broker and database).

The operator's commands run as real ``manage.py`` processes acting as node ``web`` (this test's
node); every agent must end with the older zip's bytes exactly, file by file, or keep what it had.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from extadmin.models import ExtensionPackage
from extadmin.storage import NodeStorage
from nodes.models import SyncState
from nodes.status import cluster_document
from tests.cluster.conftest import Cluster
from tests.nodes.conftest import Importer
from tests.processes import child_env, manage, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def zip_digests(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: hashlib.sha256(zf.read(i)).hexdigest() for i in zf.infolist() if not i.is_dir()}


def folder_digests(storage: NodeStorage, name: str) -> dict[str, str]:
    folder = storage.package_dir(name)
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*") if p.is_file() and p.name != f"{name}.chk"
    }


def operator(*args: str, node_storage: NodeStorage) -> dict:
    done = manage(*args, "--json", env=child_env(EXTADMIN_NODE="web", EXTADMIN_STORAGE=str(node_storage.root)))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_it_rolls_three_agents_back_to_the_older_bytes_exactly(
    cluster: Cluster, import_package: Importer, node_storage: NodeStorage, pkgdir: Path
) -> None:
    names = cluster.start(3)
    import_package("Alpha", "1.0.0")
    v2 = import_package("Alpha", "2.0.0", files={"lib/alpha.jar": b"v2 " * 5000, "ui/extra.js": b"/* only in 2 */"})
    cluster.wait_converged(names, [v2])

    doc = operator("rollback", "Alpha", node_storage=node_storage)

    assert (doc["version"], doc["previous_version"]) == ("1.0.0", "2.0.0")
    v1 = ExtensionPackage.objects.get(name="Alpha")
    cluster.wait_converged(names, [v1])
    older = pkgdir / "Alpha-1.0.0.zip"
    assert v1.sha256 == hashlib.sha256(older.read_bytes()).hexdigest()
    for name in [*names]:
        storage = cluster.storage(name)
        assert storage.read_chk("Alpha") == v1.sha256
        assert folder_digests(storage, "Alpha") == zip_digests(older), name  # ui/extra.js is gone too
    assert folder_digests(node_storage, "Alpha") == zip_digests(older)
    assert cluster_document()["extensions"][0]["converged"] is True


def test_it_never_installs_a_quarantined_version_and_flags_the_nodes_holding_it(
    cluster: Cluster, import_package: Importer, node_storage: NodeStorage, pkgdir: Path
) -> None:
    names = cluster.start(3)
    v1 = import_package("Alpha", "1.0.0")
    cluster.wait_converged(names, [v1])
    late = names[2]
    cluster.agents[late].stop()  # it misses the import of 2.0.0
    v2 = import_package("Alpha", "2.0.0")
    cluster.wait_converged(names[:2], [v2])

    operator("quarantine", "Alpha", "2.0.0", "--reason", "leaks memory", node_storage=node_storage)
    cluster.agents[late].start()
    cluster.wait_started(late)

    def said(name: str) -> str:
        state = SyncState.objects.filter(node__name=name, package_name="Alpha", state="quarantined").first()
        return state.error if state else ""

    wait_for(lambda: all(said(n) == "holds quarantined 2.0.0" for n in names[:2]), timeout=30, what="flagged holders")
    wait_for(lambda: said(late) == "not installed: 2.0.0 is quarantined", timeout=30, what="the late node held back")
    assert cluster.storage(late).read_chk("Alpha") == v1.sha256  # it kept 1.0.0: never installed 2.0.0
    assert all(cluster.storage(n).read_chk("Alpha") == v2.sha256 for n in names[:2])  # nor removed it
    cells = cluster_document()["extensions"][0]["nodes"]
    assert {n: cells[n]["state"] for n in names} == dict.fromkeys(names, "quarantined")

    doc = operator("quarantine", "Alpha", "2.0.0", "--reason", "leaks memory", "--rollback", node_storage=node_storage)

    assert doc["rolled_back_to"] == "1.0.0"
    cluster.wait_converged(names, [ExtensionPackage.objects.get(name="Alpha")])
    for name in names:
        assert folder_digests(cluster.storage(name), "Alpha") == zip_digests(pkgdir / "Alpha-1.0.0.zip")
    again = manage("import_extension", str(pkgdir / "Alpha-2.0.0.zip"),
                   env=child_env(EXTADMIN_NODE="web", EXTADMIN_STORAGE=str(node_storage.root)))
    assert (again.returncode, again.stderr.strip()) == (1, "error: checksum: quarantined: leaks memory")
