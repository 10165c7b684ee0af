"""Entry names that are not already clean (``./x``, ``a/./b``, ``a//b``): one name on every node.

Such a zip is accepted and unpacked under the cleaned names; the manifest every node checks its
folder against holds those same cleaned names, so the node that imported it and every other node
prove it installed. Names a Windows node would silently change (a trailing space or dot) are
refused, and so are names that land on the same path once cleaned.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from extadmin.models import Archive
from extadmin.storage import NodeStorage
from nodes.models import SyncState
from tests.extadmin.conftest import assert_nothing_of, import_path
from tests.extadmin.doors import DOORS, REFUSED
from tests.packages import metadata_xml
from tests.processes import run_command
from tests.semantics.support import OPERATOR_PERMS, make_user
from tests.zipcraft import write_zip

pytestmark = pytest.mark.django_db

CLEANED = {"metadata.xml", "lib/a.txt", "lib/b.txt", "ui/w/c.js"}


def unclean_package(folder: Path, name: str = "Dotted") -> Path:
    return write_zip(folder / f"{name}.zip", [
        ("./metadata.xml", metadata_xml(name).encode()),
        ("lib/./a.txt", b"a" * 100),
        ("lib//b.txt", b"b" * 200),
        ("./ui/w//c.js", b"// c"),
    ])


@pytest.fixture
def operator() -> User:
    return make_user("operator", *OPERATOR_PERMS)


@pytest.mark.parametrize("door", list(DOORS))
def test_it_installs_cleaned_entry_names_on_every_node(
    door: str, node_storage: NodeStorage, pkgdir: Path, tmp_path: Path, operator: User
) -> None:
    path = unclean_package(pkgdir)

    code, said = DOORS[door](path, operator)

    assert code == 0, said
    manifest = Archive.objects.get(package__name="Dotted").manifest
    assert {entry[0] for entry in manifest} == CLEANED
    other = NodeStorage(tmp_path / "storage" / "node-2")
    for node, storage in (("node-2", other), ("web", node_storage)):
        code, out, err = run_command("sync_node", "--name", node, "--storage", str(storage.root), "--json")
        assert code == 0, (node, out, err)
        assert json.loads(out)["outcome"] == "succeeded"
        files = {str(p.relative_to(storage.package_dir("Dotted"))) for p in storage.package_dir("Dotted").rglob("*")
                 if p.is_file()}
        assert files == CLEANED | {"Dotted.chk"}
    states = SyncState.objects.filter(package_name="Dotted").values_list("node__name", "state", "error")
    assert sorted(states) == [("node-2", "installed", ""), ("web", "installed", "")]


@pytest.mark.parametrize(
    ("entries", "expect"),
    [
        ([("lib/a.txt", b"1"), ("lib/./a.txt", b"2")], "more than once"),
        ([("lib/a.txt", b"1"), ("lib//a.txt", b"2")], "more than once"),
        ([("./metadata.xml", b"<x/>")], "more than once"),
        ([("lib/a.txt.", b"1")], "ends with a dot or a space"),
        ([("lib/a.txt ", b"1")], "ends with a dot or a space"),
        ([("lib. /a.txt", b"1")], "ends with a dot or a space"),
    ],
    ids=["./ duplicate", "// duplicate", "./metadata.xml twice", "trailing dot", "trailing space", "dir ends in space"],
)
@pytest.mark.parametrize("door", list(DOORS))
def test_it_refuses_names_that_change_once_written(
    door: str, entries: list[tuple[str, bytes]], expect: str, node_storage: NodeStorage, pkgdir: Path,
    operator: User,
) -> None:
    path = write_zip(pkgdir / "Clash.zip", [("metadata.xml", metadata_xml("Clash").encode()), *entries])

    code, said = DOORS[door](path, operator)

    assert code == REFUSED[door], said
    assert expect in said
    assert_nothing_of(node_storage, "Clash")


@pytest.mark.django_db(transaction=True)
def test_it_heals_manifests_stored_with_raw_names_by_a_migration(node_storage: NodeStorage, pkgdir: Path) -> None:
    """A package imported before the fix: its manifest has the raw names; the migration cleans them."""
    import_path(unclean_package(pkgdir))
    raw = [["./metadata.xml", 1, 2], ["lib/./a.txt", 100, 3], ["lib//b.txt", 200, 4], ["./ui/w//c.js", 4, 5]]
    Archive.objects.update(manifest=raw)
    executor = MigrationExecutor(connection)
    executor.migrate([("extadmin", "0001_initial")])
    executor.loader.build_graph()

    executor.migrate([("extadmin", "0002_clean_manifest_names")])

    assert Archive.objects.get().manifest == [
        ["metadata.xml", 1, 2], ["lib/a.txt", 100, 3], ["lib/b.txt", 200, 4], ["ui/w/c.js", 4, 5],
    ]
    # Back to the latest schema: going back to extadmin 0001 also unapplied the nodes migrations
    # that depend on it, and every later test needs them.
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
