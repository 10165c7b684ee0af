"""A ``manage.py rollback`` SIGKILLed after each step: the versions and their bytes stay exactly as they were.

The rollback re-points chunk rows between the current archive and a retained version inside the
import's transaction; a kill before the commit must leave both archives whole, and the retry works.
"""
from __future__ import annotations

import io

import pytest

from extadmin.archive import archive_copy_to
from extadmin.importing import ImportItem, package_import
from extadmin.models import ExtensionPackage, Operation, RetainedVersion
from extadmin.rollback import package_rollback
from extadmin.versions import retained_copy_to
from tests.disk import leftovers
from tests.packages import build_package
from tests.processes import manage
from tests.reliability.world import folder_matches_archive

BEFORE_COMMIT = ["import.after_checksum", "import.after_unzip", "import.after_persist", "import.after_archive"]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("point", BEFORE_COMMIT)
def test_it_keeps_both_archives_whole_when_a_rollback_is_killed(point, web_storage, web_env, pkgdir):
    v1, v2 = build_package(pkgdir, "Alpha", "1.0.0"), build_package(pkgdir, "Alpha", "2.0.0")
    for path in (v1, v2):
        package_import(items=[ImportItem(path=path)], node_name="web", storage_root=web_storage.root)

    killed = manage("rollback", "Alpha", env=web_env(EXTADMIN_FAULTS=f"{point}=kill"))

    assert killed.returncode == -9, killed.stderr
    current = ExtensionPackage.objects.get()
    assert current.version == "2.0.0"
    out = io.BytesIO()
    archive_copy_to(package_id=current.pk, out=out, expected_sha256=current.sha256)
    assert out.getvalue() == v2.read_bytes()
    retained = RetainedVersion.objects.get()
    out = io.BytesIO()
    retained_copy_to(version_id=retained.pk, out=out, expected_sha256=retained.sha256)
    assert (retained.version, out.getvalue()) == ("1.0.0", v1.read_bytes())

    doc = package_rollback(name="Alpha", node_name="web", storage_root=web_storage.root)

    assert doc["version"] == "1.0.0"
    assert folder_matches_archive(web_storage, ExtensionPackage.objects.get()) is None
    assert leftovers(web_storage) == []
    assert Operation.objects.get(kind="rollback", outcome="interrupted").previous_version == "2.0.0"
