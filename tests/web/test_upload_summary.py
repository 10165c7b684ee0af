"""Several files uploaded at once: a summary of every file's outcome, with or without JavaScript."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.test.utils import override_settings

from extadmin.models import ExtensionPackage, Operation, UploadPhase
from extadmin.storage import NodeStorage
from extadmin.upload_phases import upload_phase_set
from tests.packages import build_bundle, build_package
from tests.web.test_views import nothing_written, upload

pytestmark = pytest.mark.django_db


def rows(html: str) -> dict[str, tuple[str, str]]:
    """file → (outcome, the row's text without tags)."""
    found = re.findall(r'<tr class="file-[a-z]+" data-file="([^"]+)" data-outcome="([^"]+)">(.*?)</tr>', html, re.S)
    return {f: (o, " ".join(re.sub(r"<[^>]+>", " ", body).split())) for f, o, body in found}


def test_it_shows_every_file_s_packages_after_a_redirect_without_javascript(
    operator_client: Client, pkgdir: Path, node_storage: NodeStorage
) -> None:
    base = build_package(pkgdir, "Base")
    top = build_package(pkgdir, "Top", depends_on="Base:1.0.0")
    (pkgdir / "b").mkdir()
    bundle = build_bundle(pkgdir, "Pair", [build_package(pkgdir / "b", n) for n in ("Left", "Right")])
    response = upload(operator_client, top, base, bundle)
    assert (response.status_code, response["Location"]) == (302, "/extensions/upload/")
    html = operator_client.get("/extensions/upload/").content.decode()
    found = rows(html)
    assert list(found) == ["Top-1.0.0.zip", "Base-1.0.0.zip", "Pair.zip"]
    assert found["Top-1.0.0.zip"] == ("imported", "Top-1.0.0.zip ✓ imported Top 1.0.0 (imported)")
    assert found["Pair.zip"][1] == "Pair.zip ✓ imported Left 1.0.0 (imported) Right 1.0.0 (imported)"
    assert 'href="/extensions/Left/"' in html and "3 files imported" in html
    # Shown once: a reload of the upload page is a fresh form.
    assert "upload-summary" not in operator_client.get("/extensions/upload/").content.decode()


def test_it_shows_the_summary_in_place_for_htmx_with_each_package_s_warnings(
    operator_client: Client, pkgdir: Path, node_storage: NodeStorage
) -> None:
    sure = build_package(pkgdir, "Sure")
    unsure = build_package(pkgdir, "Unsure", ha_compatible=None)
    upload(operator_client, sure)  # the next upload re-imports it
    response = upload(operator_client, sure, unsure, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "HX-Redirect" not in response
    found = rows(response.content.decode())
    assert found["Sure-1.0.0.zip"][1] == "Sure-1.0.0.zip ✓ imported Sure 1.0.0 (re-imported)"
    outcome, text = found["Unsure-1.0.0.zip"]
    assert outcome == "imported" and "Unsure 1.0.0 (imported)" in text
    assert "haCompatible" in text, "the warning sits with the package it is about"
    assert "haCompatible" not in found["Sure-1.0.0.zip"][1]


def test_it_names_the_refused_file_with_its_step_and_holds_back_the_others(
    operator_client: Client, pkgdir: Path, node_storage: NodeStorage
) -> None:
    good = build_package(pkgdir, "Good")
    hostile = build_package(pkgdir, "Hostile", files={"../evil.txt": b"pwned"})
    other = build_package(pkgdir, "Other")
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        response = upload(operator_client, good, hostile, other, **headers)
        assert response.status_code == 400
        found = rows(response.content.decode().replace("&#x27;", "'"))
        held = "not imported held back: another file was refused; nothing was kept"
        assert found == {
            "Good-1.0.0.zip": ("not imported", f"Good-1.0.0.zip {held}"),
            "Hostile-1.0.0.zip": (
                "refused", "Hostile-1.0.0.zip ✕ refused validate : entry '../evil.txt' escapes the package folder"
            ),
            "Other-1.0.0.zip": ("not imported", f"Other-1.0.0.zip {held}"),
        }
        assert "Nothing of these 3 files was imported" in response.content.decode()
    assert nothing_written(node_storage)
    assert not Operation.objects.exists()


def test_it_names_a_bundle_s_member_that_was_refused(
    operator_client: Client, pkgdir: Path, node_storage: NodeStorage
) -> None:
    (pkgdir / "b").mkdir()
    bundle = build_bundle(pkgdir, "Batch", [build_package(pkgdir / "b", "Fine"),
                                             build_package(pkgdir / "b", "Needy", depends_on="Missing:1.0.0")])
    response = upload(operator_client, build_package(pkgdir, "Alone"), bundle)
    found = rows(response.content.decode())
    assert found["Batch.zip"][0] == "refused"
    assert found["Batch.zip"][1].startswith("Batch.zip ✕ refused Needy-1.0.0.zip : validate : ")
    assert found["Alone-1.0.0.zip"][0] == "not imported"
    assert not ExtensionPackage.objects.exists()


@override_settings(EXTADMIN_IMPORT_POLICY={"importEnabled": False})
def test_it_holds_back_every_file_when_the_upload_itself_is_refused(
    operator_client: Client, pkgdir: Path, node_storage: NodeStorage
) -> None:
    response = upload(operator_client, build_package(pkgdir, "One"), build_package(pkgdir, "Two"))
    found = rows(response.content.decode())
    assert [o for o, _ in found.values()] == ["not imported", "not imported"]
    assert "held back: the upload was refused" in found["One-1.0.0.zip"][1]


def test_it_keeps_a_single_file_landing_on_its_package_page(
    operator_client: Client, pkgdir: Path, node_storage: NodeStorage
) -> None:
    response = upload(operator_client, build_package(pkgdir, "Solo"))
    assert response["Location"] == "/extensions/Solo/"


def test_it_tells_the_uploader_alone_where_the_server_is_with_the_upload(
    operator_client: Client, operator, viewer_client: Client, pkgdir: Path, node_storage: NodeStorage  # type: ignore[no-untyped-def]
) -> None:
    upload_phase_set(user=operator, upload_id="a" * 16, phase="unpacking", detail="Pump (1 of 2)")
    assert operator_client.get("/extensions/upload/phase/?id=" + "a" * 16).json() == {
        "phase": "unpacking", "detail": "Pump (1 of 2)"
    }
    assert operator_client.get("/extensions/upload/phase/?id=" + "b" * 16).json() == {"phase": "", "detail": ""}
    assert operator_client.get("/extensions/upload/phase/?id=<script>").json() == {"phase": "", "detail": ""}
    assert viewer_client.get("/extensions/upload/phase/?id=" + "a" * 16).status_code == 403
    assert Client().get("/extensions/upload/phase/?id=" + "a" * 16).status_code == 302

    files = [SimpleUploadedFile(p.name, p.read_bytes()) for p in [build_package(pkgdir, "Phased")]]
    response = operator_client.post("/extensions/upload/", {"file": files, "upload_id": "c" * 16})
    assert response["Location"] == "/extensions/Phased/"
    assert list(UploadPhase.objects.values_list("upload_id", flat=True)) == ["a" * 16], "its row went with its answer"
    html = operator_client.get("/extensions/upload/").content.decode()
    assert 'name="upload_id"' in html and 'data-phase-url="/extensions/upload/phase/"' in html
