"""Rollouts over several nodes in this process: real database, real folders, real reconcile passes.

The agents' own processes are in tests/cluster/test_rollouts.py; here each node's pass is called
directly, one at a time, so every step of a rollout can be looked at between two passes.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from extadmin.importing import ImportItem, package_import
from extadmin.models import ExtensionPackage
from extadmin.storage import NodeStorage
from nodes.models import SyncRun
from nodes.reconcile import SyncRunResult, reconcile
from nodes.services import node_get_or_register, node_seen
from tests.nodes.conftest import import_package  # noqa: F401
from tests.packages import build_package


class Nodes:
    """Nodes n1..nN, each with its own storage, registered and online."""

    def __init__(self, tmp: Path, count: int) -> None:
        self.tmp = tmp
        self.names = [f"n{i}" for i in range(1, count + 1)]
        for name in self.names:
            node_get_or_register(name=name, storage=self.storage(name).root)
            node_seen(name=name)

    def storage(self, name: str) -> NodeStorage:
        return NodeStorage(self.tmp / "storage" / name)

    def sync(self, name: str, *, faults: str = "", trigger: str = SyncRun.Trigger.MANUAL) -> SyncRunResult:
        """One pass of ``name``: ``sync_node``'s (an operator's, failures retried now) unless told."""
        node_seen(name=name)
        with _faults(faults):
            return reconcile(
                node_name=name, storage_root=self.storage(name).root, trigger=trigger,
                verify_contents=True,
            )

    def sync_all(self, *, faults: dict[str, str] | None = None) -> None:
        for name in self.names:
            self.sync(name, faults=(faults or {}).get(name, ""))

    def chk(self, name: str, package: str) -> str | None:
        return self.storage(name).read_chk(package)

    def files(self, name: str, package: str) -> dict[str, bytes]:
        folder = self.storage(name).package_dir(package)
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@contextmanager
def _faults(value: str) -> Iterator[None]:
    old = os.environ.get("EXTADMIN_FAULTS")
    if value:
        os.environ["EXTADMIN_FAULTS"] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("EXTADMIN_FAULTS", None)
        else:
            os.environ["EXTADMIN_FAULTS"] = old


@pytest.fixture
def nodes(tmp_path: Path) -> Callable[[int], Nodes]:
    return lambda count: Nodes(tmp_path, count)


@pytest.fixture
def import_with(pkgdir: Path, node_storage: NodeStorage) -> Callable[..., ExtensionPackage]:
    """Import a package on node ``web`` under a rollout policy (the import's own fields)."""

    def run(name: str, version: str, rollout: dict[str, object] | None = None, **kwargs: object) -> ExtensionPackage:
        path = build_package(pkgdir, name, version, **kwargs)  # type: ignore[arg-type]
        [result] = package_import(items=[ImportItem(path=path)], rollout=rollout)
        assert result.package is not None
        return result.package

    return run
