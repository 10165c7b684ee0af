"""The import validates, hashes and unpacks a lone package in one read of its zip, into a private
folder beside the node's storage: a refusal leaves nothing there, a success leaves nothing either,
and the folder of a process that died while validating goes at the next import."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from extadmin.packaging import Refusal
from tests.extadmin.conftest import HOSTILE, assert_installed, import_path, leftovers

pytestmark = pytest.mark.django_db


def _beside(storage_root: Path) -> list[str]:
    return sorted(p.name for p in storage_root.parent.iterdir() if p.name != storage_root.name)


def test_it_leaves_nothing_beside_the_storage_after_an_import(node_storage, make_package):
    node_storage.root.parent.mkdir(parents=True)
    path = make_package("Alpha", "1.0.0")

    (result,) = import_path(path)

    assert_installed(node_storage, path, "Alpha", "1.0.0")
    assert [s.name for s in result.operation.steps.order_by("number")] == ["checksum", "unzip", "persist", "archive"]
    assert _beside(node_storage.root) == []
    assert leftovers(node_storage) == []


@pytest.mark.parametrize("label", ["bad CRC", "size that lies short"])
def test_it_refuses_bad_bytes_at_validate_and_leaves_nothing_anywhere(node_storage, pkgdir, label):
    node_storage.root.parent.mkdir(parents=True)  # so the private folder can be made beside it
    path = HOSTILE[label][0](pkgdir / "Hostile.zip")

    with pytest.raises(Refusal) as refused:
        import_path(path)

    assert refused.value.step == "validate"
    assert HOSTILE[label][1] in refused.value.reason
    assert not node_storage.root.exists()
    assert _beside(node_storage.root) == []


def test_it_removes_the_private_folder_of_a_process_that_died(node_storage, make_package):
    node_storage.root.parent.mkdir(parents=True, exist_ok=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    left = node_storage.root.parent / f".{node_storage.root.name}.unpack-{dead_pid}-x1"
    (left / "lib").mkdir(parents=True)
    (left / "lib" / "half.jar").write_bytes(b"half")
    alive = node_storage.root.parent / f".{node_storage.root.name}.unpack-{os.getppid()}-x2"
    alive.mkdir()

    import_path(make_package("Alpha", "1.0.0"))

    assert _beside(node_storage.root) == [alive.name]  # a live process's own folder is never touched


def test_it_gives_the_installed_folder_the_mode_a_staging_folder_has(node_storage, make_package):
    node_storage.root.parent.mkdir(parents=True)
    mask = os.umask(0o022)
    os.umask(mask)

    import_path(make_package("Alpha", "1.0.0"))

    assert (node_storage.package_dir("Alpha").stat().st_mode & 0o777) == 0o777 & ~mask
