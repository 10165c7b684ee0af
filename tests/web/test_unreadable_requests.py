"""Requests no view can answer are refused at the door: 400 with the step and the reason, never a 500.

Promise (reliability.md, Bad packages): a NUL byte or an over-long name in any URL or query →
400/404, never 500 (PostgreSQL refuses NUL in text). Every URL pattern of the project is tried,
through the console, the API (in its JSON error shape) and the admin, logged in as a superuser so
that every view would reach the database. Also: a body Django cannot parse (too many files or
fields, malformed multipart) is a refusal in the upload page, the page whole.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLResolver, get_resolver
from rest_framework.authtoken.models import Token

from extadmin.storage import NodeStorage
from tests.packages import build_package
from tests.reliability.world import rows

pytestmark = pytest.mark.django_db

NUL = "a%00b"


def _patterns(resolver: URLResolver | None = None, prefix: str = "") -> Iterator[str]:
    for p in (resolver or get_resolver()).url_patterns:
        if isinstance(p, URLResolver):
            yield from _patterns(p, prefix + str(p.pattern))
        else:
            yield prefix + str(p.pattern)


def urls_with_a_nul() -> list[str]:
    """Every URL pattern with a NUL in each of its parameters (or, without any, in its query)."""
    urls = []
    for pattern in _patterns():
        with_nul = re.sub(r"\(\?P<\w+>[^)]*\)", NUL, re.sub(r"<(?:\w+:)?\w+>", NUL, pattern))
        if with_nul != pattern:
            urls.append("/" + with_nul.replace("^", "").replace("$", ""))
        plain = re.sub(r"<(?:\w+:)?\w+>", "Alpha", pattern).replace("^", "").replace("$", "")
        urls.append("/" + plain + "?package=%00&q=%00&next=%00")
    return sorted(set(urls))


@pytest.fixture
def root(db) -> User:  # type: ignore[no-untyped-def]
    return User.objects.create_superuser("root", password="pw-root-1")


@pytest.fixture
def browser(root: User) -> Client:
    c = Client()
    c.force_login(root)
    return c


def assert_refused(response, url: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code in (400, 404), (url, response.status_code)
    if url.startswith("/api/"):
        assert response["Content-Type"].startswith("application/json"), url
        error = response.json()["error"]
        assert set(error) >= {"step", "reason"}, (url, error)


def test_it_refuses_a_nul_in_every_url_and_query_of_the_project(browser: Client, root: User) -> None:
    token = Token.objects.create(user=root).key
    before = rows()
    urls = urls_with_a_nul()
    assert len(urls) > 100
    for url in urls:
        auth = {"HTTP_AUTHORIZATION": f"Token {token}"} if url.startswith("/api/") else {}
        for method in ("get", "post", "delete"):
            assert_refused(getattr(browser, method)(url, **auth), f"{method} {url}")
    assert rows() == before


def test_it_answers_the_issues_examples_with_the_step_and_the_reason(browser: Client) -> None:
    api = browser.get("/api/extensions/a%00b/")
    assert api.status_code == 400
    assert api.json() == {
        "error": {"step": "request", "reason": "the address contains a control character (\\x00); nothing was read"}
    }
    page = browser.get("/nodes/a%00b/")
    assert page.status_code == 400
    text = page.content.decode()
    assert "<html" in text and "the address contains a control character" in text
    assert browser.get("/api/operations/?package=%00").json()["error"]["reason"] == (
        "the query field 'package' contains a control character (\\x00); nothing was read"
    )


def test_it_refuses_a_nul_in_a_form_field_cookie_or_token(client: Client, root: User) -> None:
    login = client.post("/accounts/login/", {"username": "ro\x00ot", "password": "pw-root-1"})
    assert login.status_code == 400
    assert "the field &#x27;username&#x27; contains a control character" in login.content.decode()
    reset = client.post("/accounts/password_reset/", {"email": "a\x00@example.com"})
    assert reset.status_code == 400
    client.cookies["sessionid"] = "abcdefgh\x00"
    assert client.get("/").status_code == 400
    del client.cookies["sessionid"]
    api = client.get("/api/extensions/", HTTP_AUTHORIZATION="Token abc\x00def")
    assert api.status_code == 400 and api.json()["error"]["step"] == "request"


def test_it_refuses_too_many_query_fields_in_the_doors_own_shape(browser: Client) -> None:
    query = "&".join(f"f{i}=1" for i in range(1001))
    api = browser.get(f"/api/operations/?{query}")
    assert api.status_code == 400
    assert api.json()["error"] == {"step": "request", "reason": "more than 1000 fields in the query; nothing was read"}
    page = browser.get(f"/?{query}")
    assert page.status_code == 400 and "<html" in page.content.decode()


def test_it_refuses_over_long_names_in_the_address(browser: Client) -> None:
    for url in ("/extensions/" + "A" * 300 + "/", "/api/extensions/" + "A" * 300 + "/", "/nodes/" + "n" * 300 + "/"):
        response = browser.get(url)
        assert response.status_code == 400, url
    assert "longer than 255" in browser.get("/api/extensions/" + "A" * 300 + "/").json()["error"]["reason"]


# --- bodies Django cannot parse -----------------------------------------------------------------


def _many_files(pkgdir: Path, count: int) -> list[SimpleUploadedFile]:
    data = build_package(pkgdir, "Alpha", "1.0.0").read_bytes()
    return [SimpleUploadedFile(f"f{i}.zip", data, content_type="application/zip") for i in range(count)]


def test_it_refuses_too_many_files_in_the_upload_page_the_page_whole(
    root: User, pkgdir: Path, node_storage: NodeStorage, tmp_path: Path, settings
) -> None:  # type: ignore[no-untyped-def]
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(uploads)
    browser = Client(enforce_csrf_checks=True)  # as a browser sends it: the CSRF token is in the body
    browser.force_login(root)
    browser.get("/extensions/upload/")
    token = browser.cookies["csrftoken"].value

    response = browser.post("/extensions/upload/", {"csrfmiddlewaretoken": token, "file": _many_files(pkgdir, 120)})

    assert response.status_code == 400
    text = response.content.decode()
    assert "<html" in text and 'name="file"' in text, "the upload page, whole"
    assert "more than 100 files in one upload" in text
    assert list(uploads.iterdir()) == []


def test_it_refuses_a_malformed_multipart_body_in_the_upload_page(root: User) -> None:
    browser = Client()
    browser.force_login(root)
    response = browser.generic(
        "POST", "/extensions/upload/", b"--xx\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.zip\"\r\n",
        content_type="multipart/form-data; boundary=",
    )
    assert response.status_code == 400
    assert "the request body cannot be read" in response.content.decode()
