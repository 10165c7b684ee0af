"""A refusal among several packages names the one that failed: a bundle's member, or one of
several uploaded files (by the name the client gave it, not the upload's random temp path).

The same words reach the CLI (its ``error:`` line), the API (``{"error": {"file", "step",
"reason"}}``) and the form; nothing is written.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from extadmin.storage import NodeStorage
from tests.extadmin.doors import DOORS, LOGIN_TABLES, REFUSED
from tests.semantics.support import Packages, assert_world_unchanged, token_client, upload, world_snapshot
from tests.zipcraft import patch_entry

pytestmark = pytest.mark.django_db

BAD_CRC = "validate: entry 'metadata.xml' is corrupt (bad CRC)"


def bad_crc(packages: Packages, name: str) -> Path:
    return patch_entry(packages.make(name, filename=f"{name}.zip"), "metadata.xml", crc=0xDEADBEEF)


def form_refusal(operator: User, *paths: Path, validate: bool = False) -> tuple[int, str]:
    client = Client()
    client.force_login(operator)
    handles = [p.open("rb") for p in paths]
    try:
        response = client.post("/extensions/upload/", {"file": handles, "action": "validate" if validate else "import"})
    finally:
        for h in handles:
            h.close()
    (reason,) = re.findall(r'<p class="reason">(.*?)</p>', response.content.decode(), re.S)
    return response.status_code, html.unescape(re.sub(r"<[^>]+>", "", reason))


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("validate", [False, True], ids=["import", "validate"])
def test_it_names_the_bundle_member_that_failed(
    door: str, validate: bool, node_storage: NodeStorage, packages: Packages, operator: User
) -> None:
    bundle = packages.bundle("Suite", [packages.make("BundleA", filename="BundleA.zip"), bad_crc(packages, "BundleD")])
    before = world_snapshot([node_storage.root])

    code, said = DOORS[door](bundle, operator, validate=validate)

    assert (code, said) == (REFUSED[door], f"BundleD.zip: {BAD_CRC}")
    assert_world_unchanged(before, [node_storage.root], ignore=LOGIN_TABLES)


def test_it_names_the_member_in_the_api_s_error_document(
    node_storage: NodeStorage, packages: Packages, operator: User
) -> None:
    bundle = packages.bundle("Suite", [packages.make("Orphan", depends_on="Missing:1.0.0", filename="Orphan.zip")])

    response = upload(token_client(operator), bundle)

    assert response.status_code == 400
    assert response.json() == {"error": {
        "file": "Orphan.zip", "step": "validate", "reason": "Orphan depends on Missing:1.0.0, which is not installed",
    }}


@pytest.mark.parametrize("validate", [False, True], ids=["import", "validate"])
def test_it_names_the_uploaded_file_that_failed_by_its_client_name(
    validate: bool, node_storage: NodeStorage, packages: Packages, operator: User
) -> None:
    good, bad = packages.make("Fine", filename="Fine.zip"), bad_crc(packages, "Broken")
    before = world_snapshot([node_storage.root])

    response = upload(token_client(operator), good, bad, validate=validate)

    assert response.status_code == 400
    assert response.json()["error"] == {"file": "Broken.zip", "step": "validate", "reason": BAD_CRC.split(": ", 1)[1]}
    assert form_refusal(operator, good, bad, validate=validate) == (400, f"Broken.zip: {BAD_CRC}")
    assert_world_unchanged(before, [node_storage.root], ignore=LOGIN_TABLES)


def test_it_names_a_member_of_one_of_several_bundles_by_both_names(
    node_storage: NodeStorage, packages: Packages, operator: User
) -> None:
    first = packages.bundle("First", [packages.make("One", filename="One.zip")])
    second = packages.bundle("Second", [packages.make("Two", filename="Two.zip"), bad_crc(packages, "Three")])

    response = upload(token_client(operator), first, second)

    assert response.status_code == 400
    assert response.json()["error"]["file"] == "Second.zip/Three.zip"
    assert form_refusal(operator, first, second) == (400, f"Second.zip/Three.zip: {BAD_CRC}")


def test_it_names_two_files_that_declare_the_same_package(
    node_storage: NodeStorage, packages: Packages, operator: User
) -> None:
    first = packages.make("Twice", filename="Twice-a.zip")
    again = packages.make("Twice", "1.0.1", filename="Twice-b.zip")

    response = upload(token_client(operator), first, again)

    assert response.status_code == 400
    assert response.json()["error"]["file"] == "Twice-b.zip"
    assert "Twice appears twice among the packages imported together" in response.json()["error"]["reason"]


def test_it_keeps_a_single_file_s_refusal_as_it_was(node_storage: NodeStorage, packages: Packages, operator: User):
    """One file, no bundle: there is nothing to tell apart, and the CLI's contract stays the same."""
    response = upload(token_client(operator), bad_crc(packages, "Alone"))
    assert response.json() == {"error": {"step": "validate", "reason": BAD_CRC.split(": ", 1)[1]}}


def test_it_names_the_member_whose_own_step_failed_after_validation(
    node_storage: NodeStorage, packages: Packages, operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past validation the members are imported one by one: the member whose step failed is named."""
    second = packages.make("Second", depends_on="First:1.0.0", filename="Second.zip")
    bundle = packages.bundle("Suite", [second, packages.make("First", filename="First.zip")])
    monkeypatch.setenv("EXTADMIN_FAULTS", "import.after_persist=raise")

    response = upload(token_client(operator), bundle)

    assert response.status_code == 400
    assert response.json()["error"] == {
        "file": "First.zip", "step": "persist", "reason": "fault injected at import.after_persist",
    }

