"""Where the server is with an upload: the import reports its phases, the console keeps one row per
upload while it runs (outside the import's transaction) and deletes it when the upload answers."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from extadmin.models import ExtensionPackage, UploadPhase
from extadmin.operations import Actor
from extadmin.packaging import Refusal
from extadmin.progress import phase_reached, progress_reported
from extadmin.services import package_import_files
from extadmin.storage import NodeStorage
from extadmin.upload_phases import upload_phase_get, upload_phase_set, upload_phases_reported
from tests.packages import build_package

pytestmark = pytest.mark.django_db

UPLOAD = "0123456789abcdef"


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice")


def test_it_reports_each_package_s_unpacking_then_the_saving(pkgdir: Path, node_storage: NodeStorage) -> None:
    heard: list[tuple[str, str]] = []
    base, top = build_package(pkgdir, "Base"), build_package(pkgdir, "Top", depends_on="Base:1.0.0")
    with progress_reported(lambda phase, detail: heard.append((phase, detail))):
        package_import_files(files=[(top, None), (base, None)], actor=Actor(), names=["Top.zip", "Base.zip"])
    assert heard == [("unpacking", "Base (1 of 2)"), ("unpacking", "Top (2 of 2)"), ("saving", "Base, Top")]
    heard.clear()
    package_import_files(files=[(build_package(pkgdir, "Unheard"), None)], actor=Actor())
    assert heard == [], "nobody listening outside the block"


def test_it_imports_even_when_the_listener_fails(pkgdir: Path, node_storage: NodeStorage) -> None:
    def broken(phase: str, detail: str) -> None:
        raise RuntimeError("the listener broke")

    with progress_reported(broken):
        package_import_files(files=[(build_package(pkgdir, "Sturdy"), None)], actor=Actor())
        phase_reached("saving")
    assert ExtensionPackage.objects.filter(name="Sturdy").exists()


def test_it_keeps_one_row_while_the_upload_runs_and_deletes_it_after(
    alice: User, pkgdir: Path, node_storage: NodeStorage
) -> None:
    with upload_phases_reported(user=alice, upload_id=UPLOAD):
        assert upload_phase_get(user=alice, upload_id=UPLOAD).phase == "validating"  # type: ignore[union-attr]
        package_import_files(files=[(build_package(pkgdir, "Tracked"), None)], actor=Actor())
        assert upload_phase_get(user=alice, upload_id=UPLOAD).phase == "saving"  # type: ignore[union-attr]
    assert not UploadPhase.objects.exists()
    with pytest.raises(Refusal), upload_phases_reported(user=alice, upload_id=UPLOAD):
        package_import_files(files=[(build_package(pkgdir, "Bad", files={"../x": b"1"}), None)], actor=Actor())
    assert not UploadPhase.objects.exists(), "deleted after a refusal too"


def test_it_reads_only_the_user_s_own_upload_and_ignores_bad_ids(alice: User) -> None:
    bob = User.objects.create_user("bob")
    upload_phase_set(user=alice, upload_id=UPLOAD, phase="unpacking", detail="Pump")
    assert upload_phase_get(user=bob, upload_id=UPLOAD) is None
    assert upload_phase_get(user=alice, upload_id="../../etc") is None
    with upload_phases_reported(user=alice, upload_id="short"):
        pass
    with upload_phases_reported(user=alice, upload_id="x" * 65):
        pass
    assert list(UploadPhase.objects.values_list("upload_id", flat=True)) == [UPLOAD]


def test_it_clears_rows_a_dead_process_left(alice: User) -> None:
    upload_phase_set(user=alice, upload_id="f" * 16, phase="unpacking")
    UploadPhase.objects.update(updated_at=timezone.now() - timedelta(hours=2))
    with upload_phases_reported(user=alice, upload_id=UPLOAD):
        assert list(UploadPhase.objects.values_list("upload_id", flat=True)) == [UPLOAD]
