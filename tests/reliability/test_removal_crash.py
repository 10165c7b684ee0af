"""The removing process is SIGKILLed after each step of the removal (a real child process).

Promise: a removal that dies half-way is finished by the retry, leaves nothing behind, and the
killed operation is recorded as interrupted with what it left (the package marked removing).
"""
from __future__ import annotations

import pytest

from extadmin.importing import ImportItem, package_import
from extadmin.models import ExtensionPackage, Operation
from extadmin.operations import Actor
from extadmin.removal import package_remove
from tests.disk import leftovers
from tests.packages import build_package
from tests.processes import manage
from tests.reliability.world import package_traces

REMOVE_POINTS = ["remove.after_undeploy", "remove.after_archive", "remove.after_package"]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("point", REMOVE_POINTS)
def test_it_finishes_a_killed_removal_on_retry(point, web_storage, web_env, pkgdir):
    path = build_package(pkgdir, "Doomed", "1.0.0")
    (result,) = package_import(items=[ImportItem(path=path)], actor=Actor(), node_name="web",
                               storage_root=web_storage.root)

    r = manage("delete_extension", "Doomed", env=web_env(EXTADMIN_FAULTS=f"{point}=kill"))
    assert r.returncode == -9, r.stderr

    # Killed before the commit of steps 2–3: the archive is intact, the package only marked removing.
    package = ExtensionPackage.objects.get(name="Doomed")
    assert package.state == ExtensionPackage.State.REMOVING
    assert package.chunks.count() == package.archive.chunk_count
    assert web_storage.read_chk("Doomed") == result.sha256

    package_remove(name="Doomed", actor=Actor(), node_name="web", storage_root=web_storage.root)

    assert package_traces("Doomed") == {"package": 0, "entities": 0, "chunks": 0, "archive": 0, "sync_states": 0}
    assert not web_storage.package_dir("Doomed").exists()
    assert leftovers(web_storage) == []
    killed, retried = Operation.objects.filter(package_name="Doomed", kind="remove").order_by("started_at", "id")
    assert retried.outcome == Operation.Outcome.SUCCEEDED
    assert killed.outcome == Operation.Outcome.INTERRUPTED
    assert "marked removing" in killed.error


def test_it_reimports_after_a_killed_removal_is_finished(web_storage, web_env, pkgdir):
    path = build_package(pkgdir, "Phoenix", "1.0.0")
    package_import(items=[ImportItem(path=path)], actor=Actor(), node_name="web", storage_root=web_storage.root)
    manage("delete_extension", "Phoenix", env=web_env(EXTADMIN_FAULTS="remove.after_undeploy=kill"))

    refused = manage("import_extension", str(path), env=web_env())
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: validate: Phoenix is being removed")

    assert manage("delete_extension", "Phoenix", env=web_env()).returncode == 0
    assert manage("import_extension", str(path), env=web_env()).returncode == 0
    assert ExtensionPackage.objects.get(name="Phoenix").state == ExtensionPackage.State.ACTIVE
