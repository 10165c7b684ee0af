"""Helpers for the package-semantics and API tests: real zips, real rows, real folders.

``world_snapshot`` is the proof behind "validate only has no side effect": every row of every
table (and the id sequences) plus a hash of every node's storage tree, byte for byte.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from extadmin.importing import ImportItem, ImportResult, package_import
from extadmin.models import ExtensionPackage
from extadmin.operations import Actor
from extadmin.storage import NodeStorage
from tests.packages import build_bundle, build_package

# --- the state of the world -------------------------------------------------------------------


def db_dump() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order, and where the id sequences stand."""
    dump: dict[str, list[tuple[Any, ...]]] = {}
    with connection.cursor() as cursor:
        tables = sorted(connection.introspection.table_names(cursor))
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 (our table names)
            dump[table] = sorted((tuple(_plain(v) for v in row) for row in cursor.fetchall()), key=repr)
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name, seq FROM sqlite_sequence ORDER BY name")
        else:
            cursor.execute("SELECT sequencename, last_value FROM pg_sequences ORDER BY sequencename")
        dump["(sequences)"] = [tuple(r) for r in cursor.fetchall()]
    return dump


def _plain(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value


def tree_hash(root: Path) -> str:
    """SHA-256 over every path under ``root``: its kind, its name, its mode and its bytes."""
    digest = hashlib.sha256()
    if not root.exists():
        return "absent"
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = Path(dirpath) / name
            st = full.lstat()
            digest.update(f"{full.relative_to(root)}\0{st.st_mode:o}\0".encode())
            if full.is_file() and not full.is_symlink():
                digest.update(full.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class World:
    db: dict[str, list[tuple[Any, ...]]]
    storage: dict[str, str]


def world_snapshot(roots: list[Path]) -> World:
    return World(db=db_dump(), storage={str(r): tree_hash(r) for r in roots})


def assert_world_unchanged(before: World, roots: list[Path], *, ignore: frozenset[str] = frozenset()) -> None:
    """``ignore``: tables a door writes for its own sake (a browser's login session), not the import's."""
    after = world_snapshot(roots)
    changed = [t for t in (set(before.db) | set(after.db)) - ignore if before.db.get(t) != after.db.get(t)]
    assert changed == [], f"tables changed: {changed}"
    assert after.storage == before.storage


# --- packages ---------------------------------------------------------------------------------


@dataclass
class Packages:
    """Builds package zips in one folder; ``make`` names each file after name and version."""

    folder: Path

    def make(self, name: str, version: str = "1.0.0", **kwargs: Any) -> Path:
        return build_package(self.folder, name, version, **kwargs)

    def bundle(self, name: str, members: list[Path]) -> Path:
        return build_bundle(self.folder, name, members)


def import_file(path: Path, actor: Actor | None = None) -> list[ImportResult]:
    """Import through the service, as this process's node."""
    return package_import(items=[ImportItem(path=path)], actor=actor or Actor(via="cli"))


# --- users and API clients --------------------------------------------------------------------


def make_user(username: str, *perms: str, staff: bool = False) -> User:
    user = User.objects.create_user(username, password=None, is_staff=staff)  # unusable: tokens only
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return User.objects.get(pk=user.pk)  # fresh: the permission cache is filled on first use


def token_client(user: User | None) -> APIClient:
    """An API client sending ``Authorization: Token <key>`` (no session, no CSRF), or anonymous."""
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


OPERATOR_PERMS = ("extadmin.add_extensionpackage", "extadmin.delete_extensionpackage")


@pytest.fixture
def packages(pkgdir: Path) -> Packages:
    return Packages(pkgdir)


@pytest.fixture
def operator(db: None) -> User:
    return make_user("operator", *OPERATOR_PERMS)


@pytest.fixture
def reader(db: None) -> User:
    return make_user("reader")


@pytest.fixture
def api(operator: User, node_storage: NodeStorage) -> APIClient:
    """The operator's token client, on node ``web`` with its own storage."""
    return token_client(operator)


@pytest.fixture
def imported(node_storage: NodeStorage, packages: Packages) -> Callable[..., ExtensionPackage]:
    """``imported(name, version, ...)`` → build and import a package through the service."""

    def do(name: str, version: str = "1.0.0", **kwargs: Any) -> ExtensionPackage:
        (result,) = import_file(packages.make(name, version, **kwargs))
        assert result.package is not None
        return result.package

    return do


def upload(client: APIClient, *paths: Path, validate: bool = False, **extra: Any) -> Any:
    """POST the files as multipart ``file`` parts (several parts = one all-or-nothing import)."""
    handles = [p.open("rb") for p in paths]
    try:
        url = "/api/extensions/" + ("?validate=true" if validate else "")
        return client.post(url, {"file": handles}, format="multipart", **extra)
    finally:
        for h in handles:
            h.close()
