"""The console is safe by default: no debug pages, styled error pages, no credentials in error
reports, a kept secret key, local host names, and reset mails that never trust the Host header.

Settings are read once per process, so what ``scripts/run`` gets by default is checked in a real
child process started with its environment (nothing of DJANGO_* or EXTADMIN_* set).
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.template import loader
from django.test import Client, RequestFactory
from django.views.debug import ExceptionReporter

from tests.processes import ROOT

pytestmark = pytest.mark.django_db

# Kept apart from the code that raises: an error report also shows the source lines around each frame.
PASSWORDS = {"broker": "br0ker-pw", "backend": "backend-pw", "db": "db-pw", "amqp": "amqp-pw", "amqp2": "amqp-pw2"}
LEAKS = ("settings", "Traceback", "DEBUG = True", "SECRET_KEY", "INSTALLED_APPS", str(ROOT))


def run_env(var: Path, **extra: str) -> dict[str, str]:
    """The environment ``scripts/run`` gives the console when the operator sets nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "EXTADMIN_"))}
    return {**env, "DJANGO_SETTINGS_MODULE": "extadmin.settings", "EXTADMIN_VAR": str(var), **extra}


def settings_of(env: dict[str, str]) -> dict[str, object]:
    code = (
        "import json, django; django.setup(); from django.conf import settings as s;"
        "print(json.dumps({'debug': s.DEBUG, 'hosts': s.ALLOWED_HOSTS, 'key': s.SECRET_KEY}))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


# --- defaults of the run command --------------------------------------------------------------


def test_it_runs_without_debug_unless_asked(tmp_path: Path) -> None:
    assert settings_of(run_env(tmp_path))["debug"] is False
    assert settings_of(run_env(tmp_path, DJANGO_DEBUG="1"))["debug"] is True


def test_it_accepts_only_local_host_names_by_default(tmp_path: Path) -> None:
    assert settings_of(run_env(tmp_path))["hosts"] == ["localhost", "127.0.0.1", "[::1]"]
    assert settings_of(run_env(tmp_path, DJANGO_ALLOWED_HOSTS="ops.example.com"))["hosts"] == ["ops.example.com"]


def test_it_generates_a_secret_key_once_and_keeps_it_private(tmp_path: Path) -> None:
    first = settings_of(run_env(tmp_path))["key"]
    second = settings_of(run_env(tmp_path))["key"]

    kept = tmp_path / "secret_key"
    assert first == second == kept.read_text().strip()
    assert len(str(first)) >= 50 and "embedded-default" not in str(first)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    other = tmp_path / "other"
    assert settings_of(run_env(other))["key"] != first  # every installation its own
    assert settings_of(run_env(tmp_path, DJANGO_SECRET_KEY="given-" + "k" * 50))["key"] == "given-" + "k" * 50


# --- error pages --------------------------------------------------------------------------------


def assert_styled_without_leaks(html: str, heading: str) -> None:
    assert "console.css" in html and f"<h1>{heading}</h1>" in html
    for leak in LEAKS:
        assert leak not in html, f"{leak!r} in the error page"


def test_it_answers_an_unknown_package_with_a_styled_404(viewer_client: Client) -> None:
    response = viewer_client.get("/extensions/NoSuch/")

    assert response.status_code == 404
    assert_styled_without_leaks(response.content.decode(), "Not found")
    assert "no extension package named &#x27;NoSuch&#x27;" in response.content.decode()


def test_it_answers_an_unknown_url_with_a_styled_404(viewer_client: Client) -> None:
    response = viewer_client.get("/no/such/page/")

    assert response.status_code == 404
    html = response.content.decode()
    assert_styled_without_leaks(html, "Not found")
    assert "Resolver404" not in html and "/no/such/page/" in html


def test_it_answers_a_forged_host_with_a_styled_400(client: Client) -> None:
    response = client.get("/accounts/login/", headers={"host": "evil.example.com"})

    assert response.status_code == 400
    assert_styled_without_leaks(response.content.decode(), "Bad request")


@pytest.mark.parametrize(("template", "heading"), [("500.html", "Server error"), ("400.html", "Bad request")])
def test_it_renders_the_bare_error_pages_with_no_context(template: str, heading: str) -> None:
    """Django renders these with no request and no context processor: they must need neither."""
    assert_styled_without_leaks(loader.get_template(template).render(), heading)


def test_it_answers_a_forged_csrf_post_with_a_styled_403(viewer: User) -> None:
    c = Client(enforce_csrf_checks=True)
    c.force_login(viewer)

    response = c.post("/accounts/logout/")

    assert response.status_code == 403
    assert_styled_without_leaks(response.content.decode(), "Not allowed")
    assert "security token" in response.content.decode()


def test_it_never_loads_the_debug_helper_that_replaces_the_page_with_a_refusal(  # type: ignore[no-untyped-def]
    operator: User, settings
) -> None:
    """django-htmx's debug helper swaps every 400 answer in for the whole page; the upload form's
    refusals are 400s meant for its result box. Even with DEBUG on, it is not loaded."""
    settings.DEBUG = True
    c = Client()
    c.force_login(operator)

    html = c.get("/extensions/upload/").content.decode()

    assert "htmx-2.min.js" in html
    assert "django-htmx.js" not in html


# --- error reports ------------------------------------------------------------------------------


def error_reports(request: object) -> tuple[str, str]:
    """The debug page and the text report of an exception raised while serving ``request``."""
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        reporter = ExceptionReporter(request, *sys.exc_info())
        return reporter.get_traceback_html(), reporter.get_traceback_text()


def test_it_masks_broker_and_database_passwords_in_error_reports(settings) -> None:  # type: ignore[no-untyped-def]
    pw = PASSWORDS
    settings.DEBUG = True
    settings.CELERY_BROKER_URL = f"redis://:{pw['broker']}@redis.example.com:6379/5"
    settings.CELERY_RESULT_BACKEND = f"redis://ops:{pw['backend']}@redis.example.com:6379/6"
    request = RequestFactory().get(
        "/", DATABASE_URL=f"postgres://extadmin:{pw['db']}@db.example.com/extadmin",
        CELERY_BROKER_URL=f"amqp://ops:{pw['amqp']}@mq.example.com//;amqp://ops:{pw['amqp2']}@mq2.example.com//",
    )

    html, text = error_reports(request)

    for report in (html, text):
        for password in pw.values():
            assert password not in report, f"{password} shown in the error report"
        assert "redis.example.com" in report  # the rest of the URL stays readable
    assert "db.example.com" in html and "mq2.example.com" in html


# --- password reset -----------------------------------------------------------------------------


def test_it_sends_reset_links_to_the_configured_host_never_the_requests(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.EXTADMIN_PUBLIC_URL = "https://extadmin.example.com"
    settings.ALLOWED_HOSTS = ["*"]  # even where every host is allowed, the Host header is the client's
    User.objects.create_user("ops", email="ops@example.com", password="pw-ops-1")

    response = Client().post("/accounts/password_reset/", {"email": "ops@example.com"}, headers={"host": "evil.test"})

    assert response.status_code == 302
    [message] = mail.outbox
    assert "evil.test" not in message.body
    assert "https://extadmin.example.com/accounts/reset/" in message.body
