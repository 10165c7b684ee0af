"""Request bodies Django cannot read answer in the API's one error shape, never Django's HTML 400.

Promise (the API's contract): every error is ``{"error": {"step": …, "reason": …}}``.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from extadmin.storage import NodeStorage
from tests.reliability.world import rows
from tests.semantics.support import Packages

pytestmark = pytest.mark.django_db


def test_it_answers_too_many_files_in_one_upload_as_a_json_error_naming_the_limit(
    api: APIClient, packages: Packages, node_storage: NodeStorage, tmp_path: Path, settings
) -> None:  # type: ignore[no-untyped-def]
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(uploads)
    data = packages.make("Alpha").read_bytes()
    files = [SimpleUploadedFile(f"f{i}.zip", data, content_type="application/zip") for i in range(120)]
    before = rows()

    response = api.post("/api/extensions/", {"file": files}, format="multipart")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    reason = "more than 100 files in one upload; send at most 100 at once (or a bundle)"
    assert response.json() == {"error": {"step": "upload", "reason": reason}}
    assert rows() == before
    assert list(uploads.iterdir()) == []


def test_it_answers_a_malformed_multipart_body_as_a_json_error(api: APIClient, node_storage: NodeStorage) -> None:
    response = api.generic(
        "POST", "/api/extensions/", b"--xx\r\nContent-Disposition: form-data; name=\"file\"\r\n",
        content_type="multipart/form-data; boundary=",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["step"] == "request"
    assert "Invalid boundary in multipart" in error["reason"]


def test_it_answers_form_fields_over_the_memory_limit_as_a_json_error(
    api: APIClient, node_storage: NodeStorage, packages: Packages, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    with packages.make("Alpha").open("rb") as f:
        response = api.post("/api/extensions/", {"file": f, "note": "x" * 5000}, format="multipart")
    assert response.status_code == 413
    assert response.json() == {
        "error": {"step": "request", "reason": "the form fields are larger than the limit of 1000 bytes (files aside)"}
    }


@pytest.mark.parametrize("path", ["/api/webhooks/null,null/", "/api/no-such-thing/", "/api/extensions/a/b/c/"])
def test_it_answers_an_address_no_api_url_matches_in_the_api_shape(api: APIClient, path: str) -> None:
    # Found by schemathesis (tests/fuzz): an id that is not a number matched no URL pattern and got
    # the console's HTML 404, a content type the schema does not document.
    response = api.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": {"step": "lookup", "reason": f"no API endpoint at {path}"}}


def test_a_console_address_that_matches_nothing_still_gets_the_console_page(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/no-such-page/here/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
