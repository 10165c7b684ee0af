"""Packages that pass every per-entry check but that no node should take: the whole package's
compression ratio, and metadata.xml's entity count (EXTADMIN_MAX_ENTITIES). Refused at validate
through every door, naming the numbers; nothing written."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from extadmin.packaging import Refusal
from extadmin.storage import NodeStorage
from tests.extadmin.conftest import assert_nothing_of, import_path
from tests.extadmin.doors import DOORS, REFUSED, NothingWritten
from tests.packages import build_bundle, build_package, metadata_xml
from tests.semantics.support import OPERATOR_PERMS, make_user

pytestmark = pytest.mark.django_db
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def many_small_zeros(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The issue's package: 300 files of 1 MiB of zeros, each under the per-entry ratio check's floor."""
    path = tmp_path_factory.mktemp("ratio") / "Zeros.zip"
    zeros = b"\x00" * MiB
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("metadata.xml", metadata_xml("Zeros"))
        for i in range(300):
            zf.writestr(f"lib/zeros{i:03d}.bin", zeros)
    return path


@pytest.fixture
def operator() -> User:
    return make_user("operator", *OPERATOR_PERMS)


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("validate", [False, True], ids=["import", "validate"])
def test_it_refuses_a_package_whose_whole_ratio_is_a_zip_bomb(
    door: str, validate: bool, many_small_zeros: Path, node_storage: NodeStorage, private_tempdir: Path,
    operator: User,
) -> None:
    before = NothingWritten(node_storage.root, private_tempdir)

    code, said = DOORS[door](many_small_zeros, operator, validate=validate)

    assert code == REFUSED[door], said[:300]
    total, size = 300 * MiB + len(metadata_xml("Zeros")), many_small_zeros.stat().st_size
    assert f"the package would unpack to {total} bytes from a zip of {size} bytes" in said
    assert "zip bomb" in said
    before.check()


def entity_package(folder: Path, name: str, count: int) -> Path:
    things = "".join(f'<Thing name="{name}Thing{i:06d}"/>' for i in range(count))
    text = metadata_xml(name, entities=f"<Things>{things}</Things>")
    return build_package(folder, name, metadata=text, filename=f"{name}-{count}.zip")


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("validate", [False, True], ids=["import", "validate"])
def test_it_refuses_more_entities_than_the_limit(
    door: str, validate: bool, pkgdir: Path, node_storage: NodeStorage, private_tempdir: Path, operator: User,
    settings: Any,
) -> None:
    assert settings.EXTADMIN_MAX_ENTITIES == 10_000  # the default
    path = entity_package(pkgdir, "Crowded", 10_001)
    before = NothingWritten(node_storage.root, private_tempdir)

    code, said = DOORS[door](path, operator, validate=validate)

    assert code == REFUSED[door], said[:300]
    assert "validate: metadata.xml declares 10001 entities, more than the limit of 10000" in said
    before.check()


def test_it_imports_as_many_entities_as_the_limit(pkgdir: Path, node_storage: NodeStorage, settings: Any) -> None:
    settings.EXTADMIN_MAX_ENTITIES = 300
    (result,) = import_path(entity_package(pkgdir, "Full", 300))
    assert result.package is not None and result.package.entities.count() == 300
    with pytest.raises(Refusal, match="declares 301 entities, more than the limit of 300"):
        import_path(entity_package(pkgdir, "Fuller", 301))
    assert_nothing_of(node_storage, "Fuller")


@pytest.mark.parametrize("door", list(DOORS))
def test_it_refuses_a_bundle_whose_packages_together_are_a_zip_bomb(
    door: str, pkgdir: Path, node_storage: NodeStorage, private_tempdir: Path, operator: User
) -> None:
    """Each member stays under the ratio check's floor; together they unpack to 300 times the bundle."""
    members = [
        build_package(pkgdir, f"Small{i}", files={"lib/zeros.bin": b"\x00" * 900 * 1024}, filename=f"Small{i}.zip")
        for i in range(8)
    ]
    bundle = build_bundle(pkgdir, "Smalls", members)
    before = NothingWritten(node_storage.root, private_tempdir)

    code, said = DOORS[door](bundle, operator)

    assert code == REFUSED[door], said[:300]
    packed = sum(m.stat().st_size for m in members)
    assert "validate: the packages imported together would unpack to " in said
    assert f" bytes from {packed} bytes of zips (ratio " in said and "this looks like a zip bomb" in said
    before.check()
