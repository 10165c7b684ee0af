"""Bundles (a zip of package zips) and several files at once: one import, in dependency order,
all or nothing. Service, CLI and API."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError, connection
from rest_framework.test import APIClient

from extadmin.models import ExtensionPackage, Operation
from extadmin.operations import Actor
from extadmin.packaging import Refusal
from extadmin.services import package_import_files
from extadmin.storage import NodeStorage
from tests.processes import run_command
from tests.semantics.support import Packages, World, assert_world_unchanged, upload, world_snapshot

pytestmark = pytest.mark.django_db

AUDIT_TABLES = {"extadmin_operation", "extadmin_operationstep", "sqlite_sequence", "(sequences)"}


def _chain(packages: Packages) -> list[Path]:
    """Top depends on Middle depends on Base, listed dependents first (the wrong order to import)."""
    return [
        packages.make("Top", "1.0.0", depends_on="Middle:1.0.0;Base:1.0.0"),
        packages.make("Middle", "1.0.0", depends_on="Base:1.0.0"),
        packages.make("Base", "1.0.0"),
    ]


def _import(paths: list[Path]) -> dict[str, Any]:
    return package_import_files(files=[(p, None) for p in paths], actor=Actor(via="cli"))


def _operation_order() -> list[str]:
    return list(Operation.objects.order_by("id").values_list("package_name", flat=True))


def test_it_imports_a_bundle_in_dependency_order(node_storage: NodeStorage, packages: Packages) -> None:
    doc = _import([packages.bundle("suite", _chain(packages))])
    assert [p["name"] for p in doc["packages"]] == ["Base", "Middle", "Top"]
    assert _operation_order() == ["Base", "Middle", "Top"]
    assert {p.name for p in ExtensionPackage.objects.all()} == {"Base", "Middle", "Top"}
    for name in ("Base", "Middle", "Top"):
        assert node_storage.read_chk(name) == ExtensionPackage.objects.get(name=name).sha256


def test_it_imports_several_files_as_one_bundle(node_storage: NodeStorage, packages: Packages) -> None:
    doc = _import(_chain(packages))
    assert [p["name"] for p in doc["packages"]] == ["Base", "Middle", "Top"]


def test_it_lets_bundle_members_depend_on_installed_packages(node_storage: NodeStorage, packages: Packages) -> None:
    _import([packages.make("Base", "1.0.0")])
    doc = _import([packages.bundle("b", [packages.make("Top", depends_on="Middle:1.0.0"),
                                         packages.make("Middle", depends_on="Base:1.0.0")])])
    assert [p["name"] for p in doc["packages"]] == ["Middle", "Top"]


def _refused_bundle(packages: Packages) -> Path:
    """Two good members and one whose dependency is nowhere."""
    return packages.bundle("half", [
        packages.make("Good", "1.0.0"),
        packages.make("AlsoGood", "1.0.0", depends_on="Good:1.0.0"),
        packages.make("Orphan", "1.0.0", depends_on="Nowhere:1.0.0"),
    ])


def _world(node_storage: NodeStorage) -> World:
    return world_snapshot([node_storage.root])


def test_it_refuses_a_whole_bundle_when_one_member_is_refused(node_storage: NodeStorage, packages: Packages) -> None:
    _import([packages.make("Existing", "1.0.0")])
    bundle = _refused_bundle(packages)
    before = _world(node_storage)
    with pytest.raises(Refusal, match=r"Orphan depends on Nowhere:1\.0\.0, which is not installed"):
        _import([bundle])
    assert_world_unchanged(before, [node_storage.root])


def test_it_refuses_a_bundle_with_a_member_twice(node_storage: NodeStorage, packages: Packages) -> None:
    first = packages.make("Twice", "1.0.0")
    second = packages.make("Twice", "1.0.1")
    with pytest.raises(Refusal, match="Twice appears twice"):
        _import([packages.bundle("twice", [first, second])])


def test_it_refuses_a_dependency_cycle_inside_a_bundle(node_storage: NodeStorage, packages: Packages) -> None:
    with pytest.raises(Refusal, match="dependency cycle"):
        _import([packages.make("Ping", depends_on="Pong:1.0.0"), packages.make("Pong", depends_on="Ping:1.0.0")])


@contextmanager
def _database_fails_persisting(name: str) -> Iterator[None]:
    """The database refuses the INSERT of package ``name`` (as a full disk or a lost server would)."""

    def fail(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip().upper().startswith("INSERT") and "extadmin_extensionpackage" in sql and name in (params or ()):
            raise DatabaseError(f"injected: could not write {name}")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail):
        yield


def test_it_backs_out_every_member_when_a_later_member_fails_to_persist(
    node_storage: NodeStorage, packages: Packages
) -> None:
    _import([packages.make("Existing", "1.0.0")])
    bundle = packages.bundle("suite", _chain(packages))
    before = _world(node_storage)
    with _database_fails_persisting("Top"), pytest.raises(Refusal) as refused:
        _import([bundle])
    assert refused.value.step == "persist"
    # Base and Middle had passed every step on disk and in the transaction: all of it is gone.
    after = _world(node_storage)
    assert after.storage == before.storage
    assert {t: r for t, r in after.db.items() if t not in AUDIT_TABLES} == {
        t: r for t, r in before.db.items() if t not in AUDIT_TABLES
    }
    # Only the audit of the attempt remains: every member failed and was backed out.
    attempt = Operation.objects.exclude(package_name="Existing")
    assert sorted(attempt.values_list("package_name", "outcome")) == [
        ("Base", "failed"), ("Middle", "failed"), ("Top", "failed")
    ]


def test_it_imports_a_bundle_through_the_cli(node_storage: NodeStorage, packages: Packages) -> None:
    code, out, err = run_command("import_extension", str(packages.bundle("suite", _chain(packages))), "--json")
    assert code == 0, err
    assert [p["name"] for p in json.loads(out)["packages"]] == ["Base", "Middle", "Top"]


def test_it_refuses_a_whole_bundle_through_the_cli(node_storage: NodeStorage, packages: Packages) -> None:
    bundle = _refused_bundle(packages)
    before = _world(node_storage)
    code, _, err = run_command("import_extension", str(bundle))
    assert code == 1
    assert err.strip() == "error: Orphan-1.0.0.zip: validate: Orphan depends on Nowhere:1.0.0, which is not installed"
    assert_world_unchanged(before, [node_storage.root])


def test_it_imports_a_bundle_and_several_file_parts_through_the_api(api: APIClient, packages: Packages) -> None:
    response = upload(api, packages.bundle("suite", _chain(packages)))
    assert response.status_code == 201
    assert [p["name"] for p in response.json()["packages"]] == ["Base", "Middle", "Top"]
    parts = [packages.make("Top", "1.1.0", depends_on="Side:1.0.0", filename="t.zip"),
             packages.make("Side", "1.0.0")]
    response = upload(api, *parts)
    assert response.status_code == 201
    assert [(p["name"], p["kind"]) for p in response.json()["packages"]] == [("Side", "import"), ("Top", "upgrade")]


def test_it_refuses_a_whole_bundle_through_the_api(
    api: APIClient, node_storage: NodeStorage, packages: Packages
) -> None:
    bundle = _refused_bundle(packages)
    before = _world(node_storage)
    response = upload(api, bundle)
    assert response.status_code == 400
    assert response.json()["error"]["reason"] == "Orphan depends on Nowhere:1.0.0, which is not installed"
    response = upload(api, packages.make("Fine", "1.0.0"), packages.make("Broken", depends_on="Nope:1.0.0"))
    assert response.status_code == 400
    assert_world_unchanged(before, [node_storage.root])
