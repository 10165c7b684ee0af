"""Who may call what: every endpoint, anonymous (401), without the permission (403), and with it."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from extadmin.models import ExtensionPackage, Operation
from extadmin.storage import NodeStorage
from nodes.models import ClusterSettings
from tests.semantics.support import OPERATOR_PERMS, Packages, make_user, token_client, upload

pytestmark = pytest.mark.django_db

Call = Callable[[APIClient, Path], Any]

READS: dict[str, Call] = {
    "GET /api/extensions/": lambda c, _: c.get("/api/extensions/"),
    "GET /api/extensions/<name>/": lambda c, _: c.get("/api/extensions/Held/"),
    "GET /api/operations/": lambda c, _: c.get("/api/operations/"),
    "GET /api/cluster/": lambda c, _: c.get("/api/cluster/"),
    "GET /api/policy/": lambda c, _: c.get("/api/policy/"),
    "GET /api/schema/": lambda c, _: c.get("/api/schema/"),
    "GET /api/docs/": lambda c, _: c.get("/api/docs/"),
}
# endpoint → (call, the one permission it needs)
WRITES: dict[str, tuple[Call, str]] = {
    "POST /api/extensions/": (
        lambda c, p: upload(c, p),
        "extadmin.add_extensionpackage",
    ),
    "POST /api/extensions/?validate=true": (
        lambda c, p: upload(c, p, validate=True),
        "extadmin.add_extensionpackage",
    ),
    "DELETE /api/extensions/<name>/": (
        lambda c, _: c.delete("/api/extensions/Held/"), "extadmin.delete_extensionpackage"
    ),
    "POST /api/cluster/pause/": (lambda c, _: c.post("/api/cluster/pause/"), "nodes.change_clustersettings"),
    "POST /api/cluster/resume/": (lambda c, _: c.post("/api/cluster/resume/"), "nodes.change_clustersettings"),
}


@pytest.fixture
def world(node_storage: NodeStorage, imported: Callable[..., ExtensionPackage], packages: Packages) -> Path:
    """One package installed (``Held``) and one ready to upload (``New``)."""
    imported("Held")
    return packages.make("New")


def _unchanged() -> tuple[Any, ...]:
    return (
        list(ExtensionPackage.objects.values_list("name", "sha256")),
        Operation.objects.count(),
        list(ClusterSettings.objects.values_list("sync_paused")),
    )


@pytest.mark.parametrize("endpoint", [*READS, *WRITES])
def test_it_answers_401_to_anonymous_callers(world: Path, endpoint: str) -> None:
    call = READS[endpoint] if endpoint in READS else WRITES[endpoint][0]
    before = _unchanged()
    response = call(APIClient(), world)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert _unchanged() == before


@pytest.mark.parametrize("endpoint", [*READS, *WRITES])
def test_it_answers_401_to_a_wrong_token(world: Path, endpoint: str) -> None:
    call = READS[endpoint] if endpoint in READS else WRITES[endpoint][0]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "f" * 40)
    assert call(client, world).status_code == 401


@pytest.mark.parametrize("endpoint", list(READS))
def test_it_lets_any_authenticated_user_read(world: Path, endpoint: str) -> None:
    response = READS[endpoint](token_client(make_user("reader")), world)
    assert response.status_code == 200


@pytest.mark.parametrize("endpoint", list(WRITES))
def test_it_answers_403_without_the_permission(world: Path, endpoint: str) -> None:
    call, needed = WRITES[endpoint]
    # Every other permission the API knows of, but not this one.
    others = [p for p in (*OPERATOR_PERMS, "nodes.change_clustersettings") if p != needed]
    before = _unchanged()
    response = call(token_client(make_user("almost", *others)), world)
    assert response.status_code == 403
    assert response.json()["error"]["step"] == "permission"
    assert _unchanged() == before


@pytest.mark.parametrize("endpoint", list(WRITES))
def test_it_lets_a_user_with_the_permission_write(world: Path, endpoint: str) -> None:
    call, needed = WRITES[endpoint]
    response = call(token_client(make_user("allowed", needed)), world)
    assert response.status_code in (200, 201)


@pytest.mark.parametrize("endpoint", ["POST /api/cluster/pause/", "POST /api/cluster/resume/"])
def test_it_lets_staff_pause_and_resume_without_the_permission(world: Path, endpoint: str) -> None:
    call, _ = WRITES[endpoint]
    assert call(token_client(make_user("staffer", staff=True)), world).status_code == 200


def test_it_does_not_let_staff_import_without_the_permission(world: Path) -> None:
    call, _ = WRITES["POST /api/extensions/"]
    assert call(token_client(make_user("staffer", staff=True)), world).status_code == 403


def test_it_lets_a_superuser_do_everything(world: Path) -> None:
    root = User.objects.create_superuser("root", password=None)
    for call, _ in WRITES.values():
        assert call(token_client(root), world).status_code in (200, 201)


def test_it_accepts_a_browser_session_with_csrf(world: Path) -> None:
    user = make_user("browser", *OPERATOR_PERMS)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/api/extensions/").status_code == 200
    # Session-authenticated writes need the CSRF token, as the console's forms send it.
    response = WRITES["POST /api/extensions/"][0](client, world)
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["reason"]
