"""What a periodic pass (names and sizes, no contents) notices on a node's disk.

The pass looks at every file of every package on every periodic tick, so it is written for speed
(``os.scandir``, the agent's cache of archive manifests); these pin what it must still see.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from extadmin.storage import NodeStorage
from tests.nodes.conftest import Importer, Syncer
from tests.nodes.test_reconcile import assert_holds

pytestmark = pytest.mark.django_db


def test_it_repairs_a_file_whose_size_changed_deep_in_the_tree(
    import_package: Importer, sync: Syncer, n1: NodeStorage, pkgdir: Path
) -> None:
    alpha = import_package("Alpha")
    sync()
    js = next((n1.package_dir("Alpha") / "ui").rglob("*.js"))
    size = js.stat().st_size
    js.write_bytes(js.read_bytes() + b"//")
    rel = js.relative_to(n1.package_dir("Alpha")).as_posix()

    result = sync(verify_contents=False)

    assert result.actions == [f"repaired Alpha: file {rel} has {size + 2} bytes, expected {size}"]
    assert_holds(n1, alpha, pkgdir / "Alpha-1.0.0.zip")


@pytest.mark.parametrize("where", ["lib", "ui"])
def test_it_repairs_a_link_planted_in_a_subfolder(
    import_package: Importer, sync: Syncer, n1: NodeStorage, pkgdir: Path, tmp_path: Path, where: str
) -> None:
    alpha = import_package("Alpha")
    sync()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, n1.package_dir("Alpha") / where / "escape")

    result = sync(verify_contents=False)

    assert result.actions == [f"repaired Alpha: unexpected link {where}/escape"]
    assert_holds(n1, alpha, pkgdir / "Alpha-1.0.0.zip")


def test_a_file_named_like_the_chk_inside_a_subfolder_is_not_the_chk(
    import_package: Importer, sync: Syncer, n1: NodeStorage, pkgdir: Path
) -> None:
    alpha = import_package("Alpha")
    sync()
    (n1.package_dir("Alpha") / "lib" / "Alpha.chk").write_text(alpha.sha256)

    result = sync(verify_contents=False)

    assert result.actions == ["repaired Alpha: unexpected file lib/Alpha.chk"]
    assert_holds(n1, alpha, pkgdir / "Alpha-1.0.0.zip")


def test_it_reads_the_new_manifest_after_an_upgrade(
    import_package: Importer, sync: Syncer, n1: NodeStorage, pkgdir: Path
) -> None:
    # The agent keeps manifests by package row and checksum: a new version must not be judged
    # against the old version's file list.
    import_package("Alpha", "1.0.0")
    sync()
    beta = import_package("Alpha", "1.1.0", files={"lib/extra.jar": b"x" * 10})
    assert sync(verify_contents=False).actions == ["updated Alpha to 1.1.0 (was 1.0.0)"]

    assert sync(verify_contents=False).actions == []
    assert_holds(n1, beta, pkgdir / "Alpha-1.1.0.zip")
