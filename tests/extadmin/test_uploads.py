"""A full upload folder: a clear refusal (507) through the API and the form, nothing left behind.

Promise (reliability.md, Bad packages): the upload temp folder full → a clear refusal
(507 / "disk full"), nothing left — no file in the folder and no file left open. The folder is a
real 256 KiB tmpfs: the write fails with ENOSPC exactly as on a full disk.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from extadmin.packaging import NoSpace, Refusal
from extadmin.storage import NodeStorage
from tests.packages import metadata_xml
from tests.reliability.world import rows
from tests.semantics.support import make_user, token_client

pytestmark = pytest.mark.django_db

REASON = "the upload folder is full (no space left on device); nothing was kept"


@pytest.fixture
def full_upload_folder(tmp_path: Path, settings) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """A 256 KiB tmpfs as the upload folder (``FILE_UPLOAD_TEMP_DIR``, set from EXTADMIN_UPLOAD_TMP)."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def big_package(pkgdir: Path) -> Path:
    """1 MiB of random (incompressible) bytes: four times what the upload folder holds."""
    path = pkgdir / "Big-1.0.0.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.xml", metadata_xml("Big", "1.0.0"))
        zf.writestr("lib/payload.bin", os.urandom(1024 * 1024))
    return path


def open_files_under(folder: Path) -> list[str]:
    """The files this process still holds open under ``folder``."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            held.append(target)
    return held


def assert_nothing_left(folder: Path, before: dict) -> None:  # type: ignore[type-arg]
    assert list(folder.iterdir()) == [], "the refused upload left its temporary file"
    assert open_files_under(folder) == [], "the refused upload left its temporary file open"
    assert rows() == before


def test_it_shares_the_refusal_type() -> None:
    assert issubclass(NoSpace, Refusal) and NoSpace.status == 507


def test_it_refuses_an_api_upload_with_507_when_the_upload_folder_is_full(
    full_upload_folder: Path, big_package: Path, node_storage: NodeStorage
) -> None:
    api = token_client(make_user("ops", "extadmin.add_extensionpackage"))
    before = rows()

    with big_package.open("rb") as f:
        response = api.post("/api/extensions/", {"file": f}, format="multipart")

    assert response.status_code == 507
    assert response.json() == {"error": {"step": "upload", "reason": REASON}}
    assert_nothing_left(full_upload_folder, before)
    assert not node_storage.package_dir("Big").exists()


def test_it_refuses_a_form_upload_with_507_the_page_whole(
    full_upload_folder: Path, big_package: Path, node_storage: NodeStorage
) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(User.objects.create_superuser("root", password="pw-root-1"))
    browser.get("/extensions/upload/")
    token = browser.cookies["csrftoken"].value
    before = rows()

    with big_package.open("rb") as f:
        response = browser.post("/extensions/upload/", {"csrfmiddlewaretoken": token, "file": f})

    assert response.status_code == 507
    text = response.content.decode()
    assert "<html" in text and 'name="file"' in text
    assert REASON in text
    assert_nothing_left(full_upload_folder, before)


def test_it_refuses_an_htmx_form_upload_with_507_in_the_result(
    full_upload_folder: Path, big_package: Path, node_storage: NodeStorage
) -> None:
    browser = Client()
    browser.force_login(User.objects.create_superuser("root", password="pw-root-1"))
    before = rows()

    with big_package.open("rb") as f:
        response = browser.post("/extensions/upload/", {"file": f}, HTTP_HX_REQUEST="true")

    assert response.status_code == 507
    assert REASON in response.content.decode()
    assert_nothing_left(full_upload_folder, before)


def test_it_imports_again_once_the_upload_folder_has_room(
    full_upload_folder: Path, pkgdir: Path, node_storage: NodeStorage
) -> None:
    """The folder was full only for that upload: a package that fits is imported as ever."""
    small = pkgdir / "Small-1.0.0.zip"
    with zipfile.ZipFile(small, "w") as zf:
        zf.writestr("metadata.xml", metadata_xml("Small", "1.0.0"))
    api = token_client(make_user("ops", "extadmin.add_extensionpackage"))
    with small.open("rb") as f:
        assert api.post("/api/extensions/", {"file": f}, format="multipart").status_code == 201
    assert list(full_upload_folder.iterdir()) == []
