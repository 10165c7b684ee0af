"""The version list, rollback and quarantine through the browser's forms and the API: same words, same refusals."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from extadmin.models import ExtensionPackage, Operation, Quarantine
from extadmin.storage import NodeStorage
from tests.processes import run_command

pytestmark = pytest.mark.django_db
Imported = Callable[..., ExtensionPackage]


@pytest.fixture
def two_versions(imported: Imported, pkgdir: Path) -> tuple[Path, Path]:
    imported("Alpha", "1.0.0")
    imported("Alpha", "2.0.0")
    return pkgdir / "Alpha-1.0.0.zip", pkgdir / "Alpha-2.0.0.zip"


@pytest.fixture
def api(operator: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(operator)
    return client


def test_it_lists_the_versions_on_the_package_page_with_the_buttons(operator_client: Client, two_versions) -> None:
    html = operator_client.get(reverse("package", args=["Alpha"])).content.decode()
    assert 'data-version="2.0.0" data-current="true"' in html
    assert 'data-version="1.0.0" data-current="false"' in html
    assert reverse("package-rollback", args=["Alpha"]) in html and "Roll back to 1.0.0" in html
    assert reverse("package-quarantine", args=["Alpha", "2.0.0"]) in html and "csrfmiddlewaretoken" in html


def test_it_hides_the_buttons_and_refuses_the_posts_without_permission(viewer_client: Client, two_versions) -> None:
    html = viewer_client.get(reverse("package", args=["Alpha"])).content.decode()
    assert 'data-version="1.0.0"' in html and "Roll back to" not in html and "Quarantine 2.0.0" not in html
    assert viewer_client.post(reverse("package-rollback", args=["Alpha"]), {"to": "1.0.0"}).status_code == 403
    quarantine = reverse("package-quarantine", args=["Alpha", "2.0.0"])
    assert viewer_client.post(quarantine, {"reason": "x"}).status_code == 403
    assert ExtensionPackage.objects.get().version == "2.0.0" and not Quarantine.objects.exists()


def test_it_refuses_the_posts_without_csrf(operator: User, two_versions) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.post(reverse("package-rollback", args=["Alpha"]), {"to": "1.0.0"}).status_code == 403
    assert ExtensionPackage.objects.get().version == "2.0.0"


def test_it_rolls_back_from_the_button(operator_client: Client, two_versions, node_storage: NodeStorage) -> None:
    response = operator_client.post(
        reverse("package-rollback", args=["Alpha"]), {"to": "1.0.0"}, REMOTE_ADDR="10.1.2.3"
    )
    assert response.status_code == 302 and response["Location"] == reverse("package", args=["Alpha"])
    page = operator_client.get(response["Location"]).content.decode()
    assert "Alpha was rolled back from 2.0.0 to 1.0.0" in page
    op = Operation.objects.get(kind="rollback")
    assert (op.via, op.remote_addr, op.username) == ("browser", "10.1.2.3", "operator")
    assert ExtensionPackage.objects.get().version == "1.0.0"


def test_it_refuses_a_rollback_in_the_same_words_through_every_door(
    operator_client: Client, api: APIClient, imported: Imported, two_versions
) -> None:
    imported("Beta", "1.0.0", depends_on="Alpha:2.0.0")
    said = "Beta:1.0.0 depends on Alpha:2.0.0; rolling Alpha back to 1.0.0 would break it"

    browser = operator_client.post(reverse("package-rollback", args=["Alpha"]), {"to": "1.0.0"})
    over_api = api.post("/api/extensions/Alpha/rollback/", {"to": "1.0.0"}, format="json")
    code, _, err = run_command("rollback", "Alpha", "--to", "1.0.0")

    assert browser.status_code == 409 and f"<strong>validate</strong>: {said}" in browser.content.decode()
    assert over_api.status_code == 409 and over_api.json() == {"error": {"step": "validate", "reason": said}}
    assert (code, err.strip()) == (1, f"error: validate: {said}")
    assert ExtensionPackage.objects.get(name="Alpha").version == "2.0.0"


def test_it_lists_versions_and_rolls_back_over_the_api(api: APIClient, two_versions) -> None:
    listed = api.get("/api/extensions/Alpha/versions/").json()
    assert [(v["version"], v["current"]) for v in listed["versions"]] == [("2.0.0", True), ("1.0.0", False)]
    rolled = api.post("/api/extensions/Alpha/rollback/", {}, format="json")
    assert rolled.status_code == 200 and (rolled.json()["version"], rolled.json()["kind"]) == ("1.0.0", "rollback")
    assert api.get("/api/extensions/Nope/versions/").status_code == 404
    assert api.post("/api/extensions/Alpha/rollback/", {"to": 3}, format="json").json() == {
        "error": {"step": "validate", "reason": "'to' must be a string"},
    }


def test_it_quarantines_through_every_door_and_refuses_the_upload_409(
    operator_client: Client, api: APIClient, two_versions, node_storage: NodeStorage
) -> None:
    _, v2 = two_versions
    over_api = api.post(
        "/api/extensions/Alpha/versions/2.0.0/quarantine/", {"reason": "leaks memory", "rollback": True}, format="json",
    )
    assert over_api.status_code == 200 and over_api.json()["rolled_back_to"] == "1.0.0"

    said = "quarantined: leaks memory"
    with v2.open("rb") as f:
        form = operator_client.post(reverse("package-upload"), {"file": f})
    with v2.open("rb") as f:
        upload = api.post("/api/extensions/", {"file": f}, format="multipart")
    code, _, err = run_command("import_extension", str(v2))
    assert form.status_code == 409 and f"<strong>checksum</strong>: {said}" in form.content.decode()
    assert upload.status_code == 409 and upload.json() == {"error": {"step": "checksum", "reason": said}}
    assert (code, err.strip()) == (1, f"error: checksum: {said}")
    page = operator_client.get(reverse("package", args=["Alpha"])).content.decode()
    assert 'data-version="2.0.0" data-current="false" data-quarantined="true"' in page and "leaks memory" in page


def test_it_quarantines_from_the_button_and_refuses_without_a_reason(operator_client: Client, two_versions) -> None:
    url = reverse("package-quarantine", args=["Alpha", "2.0.0"])
    refused = operator_client.post(url, {"reason": ""})
    assert refused.status_code == 400
    assert (
        "<strong>validate</strong>: a reason is required: say why this version must never be installed again"
        in refused.content.decode()
    )
    done = operator_client.post(url, {"reason": "crashes", "rollback": "1"})
    assert done.status_code == 302
    page = operator_client.get(done["Location"]).content.decode()
    assert "Alpha 2.0.0 is quarantined: no node installs it again. Alpha was rolled back to 1.0.0." in page
    assert Operation.objects.filter(kind="quarantine", via="browser").count() == 1


def test_it_answers_404_for_a_version_or_package_that_is_not_kept(operator_client: Client, api: APIClient,
                                                                  two_versions) -> None:
    url = reverse("package-quarantine", args=["Alpha", "9.9.9"])
    assert operator_client.post(url, {"reason": "x"}).status_code == 404
    assert api.post("/api/extensions/Ghost/rollback/", {}, format="json").status_code == 404
    assert json.loads(api.post("/api/extensions/Alpha/versions/9.9.9/quarantine/", {"reason": "x"},
                               format="json").content)["error"]["step"] == "validate"

