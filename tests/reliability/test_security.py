"""Access: production settings pass Django's deployment checks; the agents' fault switch is off there.

Promise (reliability.md, Access): ``manage.py check --deploy`` is clean under production settings.
"""
from __future__ import annotations

import os

from tests.processes import ROOT, ManagedProcess, free_port, http_get, manage, port_answers, run_env, wait_for

PRODUCTION = {
    "EXTADMIN_PRODUCTION": "1",
    "DJANGO_SECRET_KEY": "k" + os.urandom(32).hex() + "-Zq!9",
    "DJANGO_ALLOWED_HOSTS": "extadmin.example.com",
    "DJANGO_DEBUG": "",
}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "EXTADMIN_"))}
    return {**env, "DJANGO_SETTINGS_MODULE": "extadmin.settings", **PRODUCTION, **extra}


def test_it_passes_check_deploy_under_production_settings(tmp_path):
    r = manage("check", "--deploy", "--fail-level", "WARNING", env=_env(EXTADMIN_VAR=str(tmp_path)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "System check identified no issues" in r.stdout, r.stdout + r.stderr


def test_it_refuses_to_start_in_production_without_a_secret_key(tmp_path):
    env = _env(EXTADMIN_VAR=str(tmp_path))
    del env["DJANGO_SECRET_KEY"]
    r = manage("check", env=env)
    assert r.returncode != 0 and "DJANGO_SECRET_KEY" in r.stderr


def test_it_ignores_the_fault_switch_in_production(tmp_path):
    """The test-only fault injection can never kill a production process."""
    code = (
        "import django; django.setup();"
        "from extadmin import faults; faults.checkpoint('import.after_unzip'); print('alive')"
    )
    import subprocess
    import sys

    from tests.processes import ROOT

    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env=_env(EXTADMIN_VAR=str(tmp_path), EXTADMIN_FAULTS="import.after_unzip=kill"))
    assert r.returncode == 0 and r.stdout.strip() == "alive", r.stderr


# --- every URL: login first, then the permission, for every method -----------------------------

def _urls() -> list[str]:
    """Every URL of the project outside Django's own login/password pages, with a real name filled in."""
    import re

    from django.urls import URLResolver, get_resolver

    def walk(resolver, prefix=""):  # type: ignore[no-untyped-def]
        for p in resolver.url_patterns:
            if isinstance(p, URLResolver):
                yield from walk(p, prefix + str(p.pattern))
            else:
                yield prefix + str(p.pattern)

    urls = []
    for pattern in walk(get_resolver()):
        if pattern.startswith("accounts/") or pattern.endswith(("login/", "logout/")) or "(?P" in pattern:
            continue  # the login and logout pages are public by design; admin's regex routes are Django's
        urls.append("/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "Seen" if m.group(1) == "name" else "1", pattern))
    return urls


def test_it_lets_no_anonymous_request_through_on_any_url(db, client, tmp_path, settings):  # type: ignore[no-untyped-def]
    from extadmin.importing import ImportItem, package_import
    from tests.packages import build_package
    from tests.reliability.world import rows

    settings.EXTADMIN_STORAGE = tmp_path / "storage"
    # /metrics answers no session but a bearer token, or without one a loopback client (the test
    # client's 127.0.0.1): with a token set, nothing anonymous gets through there either.
    settings.EXTADMIN_METRICS_TOKEN = "a-token-the-client-does-not-send"
    package_import(items=[ImportItem(path=build_package(tmp_path, "Seen", "1.0.0"))])
    before = rows()
    checked = 0
    for url in _urls():
        for method in ("get", "post", "put", "patch", "delete"):
            response = getattr(client, method)(url)
            checked += 1
            if response.status_code in (301, 302) and url == "/favicon.ico":
                # the one public redirect: to the static icon, which gives nothing away
                assert response["Location"] == "/static/extadmin/favicon.svg", (method, url)
            elif response.status_code in (301, 302):
                assert "/login/" in response["Location"], (method, url, response["Location"])
            else:
                assert response.status_code in (401, 403, 404, 405), (method, url, response.status_code)
    assert rows() == before
    assert checked >= 5 * 15


def test_it_refuses_every_change_to_a_logged_in_user_without_permissions(db, client, tmp_path, settings):  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    from extadmin.importing import ImportItem, package_import
    from tests.packages import build_package
    from tests.reliability.world import rows

    settings.EXTADMIN_STORAGE = tmp_path / "storage"
    package_import(items=[ImportItem(path=build_package(tmp_path, "Seen", "1.0.0"))])
    reader = User.objects.create(username="reader")
    token = Token.objects.create(user=reader).key
    client.force_login(reader)
    before = rows()
    (tmp_path / "up").mkdir()
    upload = build_package(tmp_path / "up", "Sneaky", "1.0.0")
    for url in _urls():
        for method in ("post", "put", "patch", "delete"):
            kwargs = {"HTTP_AUTHORIZATION": f"Token {token}"} if url.startswith("/api/") else {}
            with upload.open("rb") as f:
                send = getattr(client, method)
                response = send(url, {"file": f}, **kwargs) if method == "post" else send(url, **kwargs)
            assert response.status_code in (302, 400, 403, 404, 405), (method, url, response.status_code)
    assert rows() == before, "a user without permissions changed something"


# --- the console as scripts/run starts it ------------------------------------------------------

def test_it_shows_no_debug_page_when_run_as_scripts_run_runs_it(tmp_path):  # type: ignore[no-untyped-def]
    """gunicorn with scripts/run's arguments and environment (DEBUG unset): error pages in the
    console's style that show no settings, paths or traceback; static files served all the same."""
    port = free_port()
    web = ManagedProcess(
        env=run_env(tmp_path, port=port), log=tmp_path / "gunicorn.log",
        argv=[str(ROOT / ".venv" / "bin" / "gunicorn"), "extadmin.wsgi", "--bind", f"127.0.0.1:{port}",
              "--workers", "1", "--threads", "4", "--no-control-socket"],
    ).start()
    try:
        wait_for(lambda: port_answers(port), timeout=60, what="gunicorn")
        missing = http_get(port, "/no/such/page/")
        forged = http_get(port, "/accounts/login/", Host="evil.example.com")
        css = http_get(port, "/static/extadmin/console.css")
    finally:
        web.stop()

    for (status, html), expected in [(missing, 404), (forged, 400)]:
        assert status == expected, html[:500]
        assert "console.css" in html, html[:500]
        for leak in ("settings", "Traceback", "DEBUG", "SECRET", str(ROOT), "Request Method"):
            assert leak not in html, f"{leak!r} in the {expected} page"
    assert css[0] == 200 and ".card.narrow" in css[1]
