"""Hostile packages through every door: the CLI, the JSON API and the browser's upload form.

Promise (reliability.md, Bad packages): each is refused with a clear, specific error and nothing
is written — no row in any extadmin/nodes table (only the audit trail of a refused attempt), no
change under the node's storage, no temporary file left in the upload folder or the bundle folder.
"""
from __future__ import annotations

import html
import os
import tempfile
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from extadmin.importing import ImportItem, package_import
from extadmin.operations import Actor
from extadmin.packaging.policy import DEFAULT_POLICY
from tests.disk import tree
from tests.packages import build_package
from tests.processes import manage
from tests.reliability.hostile import (
    CORPUS_POLICY,
    INSTALLED,
    LABELS,
    LIMITS_ENV,
    LIMITS_SETTINGS,
    hostile_corpus,
    markup_package,
)
from tests.reliability.world import rows

SEED = int(os.environ.get("EXTADMIN_HOSTILE_SEED", "20261126"))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return {c.label: c for c in hostile_corpus(tmp_path_factory.mktemp("hostile"), seed=SEED)}


@pytest.fixture
def world(db, settings, web_storage, tmp_path, pkgdir, monkeypatch):  # type: ignore[no-untyped-def]
    """Small limits and the corpus's import policy, private upload and temp folders, one package
    already installed on node ``web``."""
    for key, value in LIMITS_SETTINGS.items():
        setattr(settings, key, value)
    settings.EXTADMIN_IMPORT_POLICY = {**DEFAULT_POLICY, **CORPUS_POLICY}
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))  # where bundles are unpacked
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(uploads)
    package_import(items=[ImportItem(path=build_package(pkgdir, INSTALLED, "1.0.0"))], actor=Actor())
    return uploads


class Snapshot:
    def __init__(self, storage, uploads: Path) -> None:  # type: ignore[no-untyped-def]
        self.storage, self.uploads = storage, uploads
        self.rows, self.tree = rows(), tree(storage.root)

    def assert_unchanged(self) -> None:
        assert rows() == self.rows, "a refused package wrote rows"
        assert tree(self.storage.root) == self.tree, "a refused package changed the node's storage"
        assert list(self.uploads.iterdir()) == [], "a refused upload left its temporary file"
        assert list(Path(tempfile.gettempdir()).iterdir()) == [], "a refused bundle left its temporary folder"


def _cases(*, http: bool) -> list[str]:
    return [label for label in LABELS if http or label != "upload over the size limit"]


# --- the CLI ----------------------------------------------------------------------------------


def cli_refusal(path: Path) -> str:
    """``manage.py import_extension PATH`` in this process: returns its one ``error:`` line."""
    err = StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("import_extension", str(path), stdout=StringIO(), stderr=err)
    assert exit_.value.code == 1
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize("label", _cases(http=False))
def test_it_refuses_hostile_packages_through_the_cli(label, corpus, world, web_storage):
    case = corpus[label]
    before = Snapshot(web_storage, world)

    line = cli_refusal(case.path)

    assert case.expect in line.lower(), f"seed {SEED}: {line}"
    before.assert_unchanged()


@pytest.mark.django_db(transaction=True)
def test_it_refuses_hostile_packages_through_a_real_cli_process(corpus, web_storage, web_env, tmp_path):
    """The real thing for a few: a child process, its exit status and its stderr."""
    env = web_env(**LIMITS_ENV)
    before = tree(web_storage.root), rows()
    for label in ["zip slip ../x", "symlink", "bad CRC", "billion laughs", "bundle with a zip-slip member"]:
        r = manage("import_extension", str(corpus[label].path), env=env)
        assert r.returncode == 1, (label, r.stdout, r.stderr)
        assert r.stderr.startswith("error: ") and corpus[label].expect in r.stderr.lower(), (label, r.stderr)
        assert r.stdout == ""
    assert (tree(web_storage.root), rows()) == before


# --- the browser's upload form ----------------------------------------------------------------


@pytest.fixture
def operator(db) -> User:  # type: ignore[no-untyped-def]
    user = User.objects.create(username="operator")  # no password: force_login, and no slow hashing
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_extensionpackage", "delete_extensionpackage"])
    )
    return user


@pytest.mark.parametrize("label", _cases(http=True))
def test_it_refuses_hostile_packages_through_the_upload_form(label, corpus, world, web_storage, client, operator):
    case = corpus[label]
    client.force_login(operator)
    before = Snapshot(web_storage, world)

    with case.path.open("rb") as f:
        response = client.post("/extensions/upload/", {"file": f})

    assert response.status_code == case.status, response.content[:300]
    assert case.expect in html.unescape(response.content.decode()).lower(), f"seed {SEED}"
    before.assert_unchanged()


# --- the JSON API -----------------------------------------------------------------------------


@pytest.fixture
def api_token(operator: User) -> str:
    return Token.objects.create(user=operator).key


@pytest.mark.parametrize("label", _cases(http=True))
def test_it_refuses_hostile_packages_through_the_api(label, corpus, world, web_storage, client, api_token):
    case = corpus[label]
    before = Snapshot(web_storage, world)

    with case.path.open("rb") as f:
        response = client.post("/api/extensions/", {"file": f}, HTTP_AUTHORIZATION=f"Token {api_token}")

    assert response.status_code == case.status, response.content[:300]
    body = response.json()
    assert set(body) == {"error"} and {"step", "reason"} <= set(body["error"]), body
    assert case.expect in body["error"]["reason"].lower(), f"seed {SEED}: {body}"
    before.assert_unchanged()


def test_it_refuses_a_corpus_that_is_in_no_repository_in_full(world, web_storage, client, api_token, tmp_path):
    """A corpus drawn from a fresh random seed, never written before: every case refused, API and CLI."""
    seed = int.from_bytes(os.urandom(4), "big")
    fresh = hostile_corpus(tmp_path / "fresh", seed=seed)
    before = Snapshot(web_storage, world)
    refused = {"api": 0, "cli": 0}
    for case in fresh:
        with case.path.open("rb") as f:
            response = client.post("/api/extensions/", {"file": f}, HTTP_AUTHORIZATION=f"Token {api_token}")
        assert response.status_code == case.status, (seed, case.label, response.content[:200])
        assert case.expect in response.json()["error"]["reason"].lower(), (seed, case.label)
        refused["api"] += 1
        if not case.http_only:
            assert case.expect in cli_refusal(case.path).lower(), (seed, case.label)
            refused["cli"] += 1
    before.assert_unchanged()
    assert refused == {"api": len(fresh), "cli": len(fresh) - 1}


# --- markup in metadata: accepted, shown escaped ----------------------------------------------


def test_it_shows_markup_in_metadata_escaped_on_every_page(world, client, operator, tmp_path):
    path, name, raw = markup_package(tmp_path, seed=SEED)
    client.force_login(operator)
    with path.open("rb") as f:
        assert client.post("/extensions/upload/", {"file": f}).status_code == 302  # accepted
    operator.is_staff = operator.is_superuser = True
    operator.save()
    pages = ["/", f"/extensions/{name}/", f"/extensions/{name}/delete/", "/admin/extadmin/extensionpackage/"]
    from extadmin.models import ExtensionPackage

    pages.append(f"/admin/extadmin/extensionpackage/{ExtensionPackage.objects.get(name=name).pk}/change/")
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        text = response.content.decode()
        for markup in raw:
            assert markup not in text, f"{page} shows {markup} unescaped"
    detail = client.get(f"/extensions/{name}/").content.decode()
    assert html.escape(raw[0], quote=False) in detail or html.escape(raw[0]) in detail


def test_it_returns_markup_in_metadata_as_plain_json_data(world, client, api_token, tmp_path):
    path, name, raw = markup_package(tmp_path, seed=SEED)
    with path.open("rb") as f:
        response = client.post("/api/extensions/", {"file": f}, HTTP_AUTHORIZATION=f"Token {api_token}")
    assert response.status_code == 201
    assert response["Content-Type"].startswith("application/json")
    listed = client.get(f"/api/extensions/{name}/", HTTP_AUTHORIZATION=f"Token {api_token}").json()
    assert listed["vendor"] == raw[1]  # data, not markup: JSON carries it verbatim, nothing renders it


def test_it_answers_413_to_an_oversized_form_post_that_carries_its_csrf_token(corpus, world, web_storage, operator):
    """As a browser sends it: CSRF enforced, the token field before the file, Content-Length too big."""
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(operator)
    browser.get("/extensions/upload/")
    token = browser.cookies["csrftoken"].value
    before = Snapshot(web_storage, world)

    with corpus["upload over the size limit"].path.open("rb") as f:
        response = browser.post("/extensions/upload/", {"csrfmiddlewaretoken": token, "file": f})

    assert response.status_code == 413
    assert "larger than the limit" in html.unescape(response.content.decode())
    before.assert_unchanged()
