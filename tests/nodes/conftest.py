"""Helpers for the node tests: packages imported for real on node ``web``, other nodes' storages.

Reconcile runs against the real database and real folders under tmp_path; nothing is mocked.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from extadmin.importing import ImportItem, package_import
from extadmin.models import ExtensionPackage
from extadmin.storage import NodeStorage
from nodes.models import SyncRun
from nodes.reconcile import SyncRunResult, reconcile
from tests.packages import build_package

Importer = Callable[..., ExtensionPackage]
Syncer = Callable[..., SyncRunResult]


@pytest.fixture
def import_package(pkgdir: Path, node_storage: NodeStorage) -> Importer:
    """Build a package zip and import it on node ``web`` (the ordered import, for real)."""

    def run(name: str, version: str = "1.0.0", **kwargs: object) -> ExtensionPackage:
        path = build_package(pkgdir, name, version, **kwargs)  # type: ignore[arg-type]
        [result] = package_import(items=[ImportItem(path=path)])
        assert result.package is not None
        return result.package

    return run


@pytest.fixture
def n1(tmp_path: Path) -> NodeStorage:
    return NodeStorage(tmp_path / "storage" / "n1")


@pytest.fixture
def sync(n1: NodeStorage) -> Syncer:
    """One reconcile pass of node n1 (contents verified unless told otherwise)."""

    def run(*, trigger: str = SyncRun.Trigger.MANUAL, verify_contents: bool = True, **kwargs: object) -> SyncRunResult:
        return reconcile(
            node_name="n1", storage_root=n1.root, trigger=trigger, verify_contents=verify_contents,
            **kwargs,  # type: ignore[arg-type]
        )

    return run
