"""Single sign-on in Debian's headless Chromium, against a real OpenID provider.

The provider is the npm package ``oidc-provider`` (``tests/oidc/provider.js``) run by the machine's
Node.js, one process for the session; the console is pytest-django's live server, so every redirect
between the browser, the console and the provider is real HTTP. The provider's own login and
consent pages are filled in as a person would.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousOperation
from playwright.sync_api import Browser, BrowserContext, Page, expect

from extadmin.models import ExtensionPackage
from extadmin.operations import Actor
from extadmin.services import package_import_files
from extadmin.sso.backend import OidcBackend
from extadmin.sso.config import OidcConfig
from extadmin.sso.discovery import provider_metadata_forget
from extadmin.sso.models import OidcIdentity
from extadmin.storage import NodeStorage
from tests.browser.test_console import make_user, shot
from tests.packages import build_package
from tests.processes import ROOT, ManagedProcess, free_port, port_answers, wait_for

# A JWT is three base64url parts joined by dots; its header and its claims are both JSON objects, so
# both start "eyJ". A bare "eyJ" is not enough: a random 64-character CSRF token holds it about once
# in 4,000 (CI once failed on one).
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OIDC_DIR = ROOT / "tests" / "oidc"
GROUP_MAP = {"ext-admins": "operator", "ext-viewers": "viewer"}
PROVIDER_NAME = "Test IdP"
# Only this machine: the provider's development pages load a web font from the internet.
NOT_LOOPBACK = re.compile(r"^(?!https?://(127\.0\.0\.1|localhost)[:/]).*")


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str
    client_secret: str
    log: Path


def npm_ci() -> None:
    """The provider's packages, as pinned by package-lock.json (``scripts/setup --with-browser`` too)."""
    if (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    if shutil.which("npm") is None:
        pytest.fail("npm is not installed: scripts/setup --with-browser installs Node.js and npm")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=OIDC_DIR, check=True, timeout=300)


@pytest.fixture(scope="session")
def oidc_provider(live_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:  # type: ignore[no-untyped-def]
    npm_ci()
    port = free_port()
    provider = Provider(
        issuer=f"http://127.0.0.1:{port}",
        client_id="extadmin",
        client_secret=secrets.token_urlsafe(32),
        log=tmp_path_factory.mktemp("oidc") / "provider.log",
    )
    env = {
        **os.environ,
        "OIDC_PORT": str(port),
        "OIDC_CLIENT_ID": provider.client_id,
        "OIDC_CLIENT_SECRET": provider.client_secret,
        "OIDC_REDIRECT_URI": f"{live_server.url}/oidc/callback/",
        "OIDC_POST_LOGOUT_REDIRECT_URI": f"{live_server.url}/accounts/login/",
    }
    proc = ManagedProcess(env=env, log=provider.log, argv=["node", str(OIDC_DIR / "provider.js")]).start()

    def up() -> bool:
        assert proc.alive, proc.output()
        return port_answers(port)

    wait_for(up, timeout=60, what="the OpenID provider")
    yield provider
    proc.stop()


@pytest.fixture
def sso(settings, oidc_provider: Provider) -> Provider:  # type: ignore[no-untyped-def]
    """The console configured as an operator would, through ``EXTADMIN_OIDC_*``."""
    settings.EXTADMIN_OIDC = OidcConfig(
        issuer=oidc_provider.issuer,
        discovery_url=f"{oidc_provider.issuer}/.well-known/openid-configuration",
        client_id=oidc_provider.client_id,
        client_secret=oidc_provider.client_secret,
        scopes="openid email profile groups",
        group_map=GROUP_MAP,
        provider_name=PROVIDER_NAME,
    )
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend", "extadmin.sso.backend.OidcBackend"]
    provider_metadata_forget()
    return oidc_provider


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    ctx.route(NOT_LOOPBACK, lambda route: route.abort())
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    return pg


def provider_sign_in(page: Page, provider: Provider, login: str) -> None:
    """The provider's development login page (any password), then its consent page."""
    expect(page).to_have_url(re.compile(re.escape(provider.issuer) + "/interaction/"))
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password will do")
    page.click("button:has-text('Sign-in')")
    page.click("button:has-text('Continue')")


def sso_sign_in(page: Page, base: str, provider: Provider, login: str) -> None:
    page.goto(base + "/")
    expect(page).to_have_url(f"{base}/accounts/login/?next=/")
    page.click(f"text=Sign in with {PROVIDER_NAME}")
    provider_sign_in(page, provider, login)
    expect(page).to_have_url(base + "/")
    expect(page.locator("header .who")).to_contain_text(login)


def csrf_headers(page: Page) -> dict[str, str]:
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    return {"X-CSRFToken": token, "Referer": page.url}


def test_it_signs_an_operator_in_through_the_provider_and_lets_her_upload(
    page: Page, live_server, sso: Provider, node_storage: NodeStorage, pkgdir: Path, caplog  # type: ignore[no-untyped-def]
) -> None:
    base = live_server.url
    caplog.set_level(logging.DEBUG)  # every line of every logger, the library's and requests' too
    seen: list[str] = []
    page.on("load", lambda p: seen.append(p.content()))
    page.goto(base + "/accounts/login/")
    # Both doors on one page: the provider's, and the local form for break-glass.
    expect(page.locator("#sso-sign-in")).to_have_text(f"Sign in with {PROVIDER_NAME}")
    expect(page.locator("#id_username")).to_be_visible()
    shot(page, "20-login-with-sso")

    sso_sign_in(page, base, sso, "alice")
    expect(page.locator("header nav")).to_contain_text("Upload")
    shot(page, "21-sso-operator-dashboard")
    alice = User.objects.get(username="alice")
    assert OidcIdentity.objects.get(user=alice).subject == "alice"
    assert [g.name for g in alice.groups.all()] == ["operator"]
    assert not alice.has_usable_password()

    page.goto(base + "/extensions/upload/")
    page.set_input_files("#id_file", str(build_package(pkgdir, "SsoUpload", "1.0.0")))
    page.click("button[value=import]")
    page.wait_for_url(base + "/extensions/SsoUpload/")
    expect(page.locator("article.operation").first).to_contain_text("by alice")
    assert ExtensionPackage.objects.filter(name="SsoUpload").exists()

    seen.append(page.content())
    assert len(seen) >= 5
    assert '"POST /token HTTP/1.1" 200' in caplog.text  # the exchange itself was logged, and read here
    for text in [*seen, caplog.text, sso.log.read_text()]:
        assert sso.client_secret not in text
        assert not JWT.search(text), "a JWT (the ID token) in a page or a log line"


def test_it_signs_a_viewer_in_read_only(page: Page, live_server, sso: Provider) -> None:  # type: ignore[no-untyped-def]
    base = live_server.url
    sso_sign_in(page, base, sso, "bob")
    expect(page.locator("header nav")).not_to_contain_text("Upload")
    assert [g.name for g in User.objects.get(username="bob").groups.all()] == ["viewer"]
    response = page.goto(base + "/extensions/upload/")
    assert response is not None and response.status == 403
    shot(page, "22-sso-viewer-403")


def test_it_lets_a_user_of_no_mapped_group_read_but_not_act(
    page: Page, live_server, sso: Provider, node_storage: NodeStorage, pkgdir: Path  # type: ignore[no-untyped-def]
) -> None:
    base = live_server.url
    # A local account with carol's address and the right to act: the provider's carol is not it.
    make_user("carol", can_change=True)
    User.objects.filter(username="carol").update(email="carol@example.test")
    package_import_files(files=[(build_package(pkgdir, "Kept", "1.0.0"), None)], actor=Actor(via="cli"))

    sso_sign_in(page, base, sso, "carol")
    carol = OidcIdentity.objects.get(subject="carol").user
    assert carol.username == "carol-sso" and not carol.groups.exists()
    expect(page.locator("header .who")).to_have_text("carol-sso")
    expect(page.locator('td.cell[data-package="Kept"]').first).to_be_visible()
    expect(page.locator("header nav")).not_to_contain_text("Upload")

    upload = page.request.post(
        base + "/extensions/upload/",
        headers=csrf_headers(page),
        multipart={"file": {"name": "x.zip", "mimeType": "application/zip", "buffer": b"PK"}, "action": "import"},
    )
    assert upload.status == 403
    delete = page.request.delete(base + "/api/extensions/Kept/", headers=csrf_headers(page))
    assert delete.status == 403, delete.text()
    assert "permission" in delete.text()
    assert ExtensionPackage.objects.filter(name="Kept").exists()


def test_it_keeps_the_local_login_for_break_glass(page: Page, live_server, sso: Provider) -> None:  # type: ignore[no-untyped-def]
    base = live_server.url
    User.objects.create_superuser("admin", password="break-glass-pw-1")
    page.goto(base + "/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "break-glass-pw-1")
    page.click("button[type=submit]")
    expect(page).to_have_url(base + "/")
    expect(page.locator("header nav")).to_contain_text("Admin")


def provider_answer_held(page: Page, provider: Provider, login: str) -> str:
    """Sign in at the provider and consent, but hold its answer (the redirect to the callback) instead of
    following it: the consent form is sent by the context's own HTTP client (same cookies), whose
    redirects can be stopped, where a browser's cannot."""
    expect(page).to_have_url(re.compile(re.escape(provider.issuer) + "/interaction/"))
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password will do")
    page.click("button:has-text('Sign-in')")
    expect(page.locator("button:has-text('Continue')")).to_be_visible()
    action = page.eval_on_selector("form", "f => f.action")
    resume = page.request.post(action, form={"prompt": "consent"}, max_redirects=0).headers["location"]
    answer = page.request.get(urljoin(action, resume), max_redirects=0).headers["location"]
    assert "/oidc/callback/?" in answer, answer
    return answer


def test_it_refuses_an_answer_with_a_forged_state(page: Page, live_server, sso: Provider) -> None:  # type: ignore[no-untyped-def]
    base = live_server.url
    page.goto(base + "/accounts/login/")
    page.click("#sso-sign-in")
    answer = provider_answer_held(page, sso, "alice")

    genuine = urlsplit(answer)
    query = {**dict(parse_qsl(genuine.query)), "state": "forged-" + secrets.token_urlsafe(16)}
    response = page.goto(urlunsplit(genuine._replace(query=urlencode(query))))
    assert response is not None and response.status == 400
    expect(page.locator(".refusal .reason")).to_contain_text("sign in: this answer from the identity provider")
    shot(page, "23-sso-forged-state")
    page.goto(base + "/")
    expect(page).to_have_url(f"{base}/accounts/login/?next=/")
    assert not User.objects.filter(username="alice").exists()

    # The genuine answer, still unused, signs her in.
    page.goto(answer)
    expect(page).to_have_url(base + "/")
    expect(page.locator("header .who")).to_have_text("alice")


def test_it_ends_the_local_and_the_provider_session_at_logout(
    page: Page, live_server, sso: Provider  # type: ignore[no-untyped-def]
) -> None:
    base = live_server.url
    sso_sign_in(page, base, sso, "bob")
    page.click("button:has-text('Log out')")
    expect(page).to_have_url(re.compile(re.escape(sso.issuer) + "/session/end"))
    page.click("button:has-text('Yes, sign me out')")
    expect(page).to_have_url(base + "/accounts/login/")
    page.goto(base + "/")
    expect(page).to_have_url(f"{base}/accounts/login/?next=/")
    # The provider asks again who signs in: its session ended too.
    page.click("#sso-sign-in")
    expect(page.locator("input[name=login]")).to_be_visible()


def test_it_refuses_an_id_token_of_another_issuer_or_for_another_client(sso: Provider) -> None:
    """The library checks the signature, expiry and nonce; the issuer and audience are checked here,
    against the provider's real discovery document."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    backend = OidcBackend()

    def token(**claims: object) -> str:
        return jwt.encode({"sub": "alice", **claims}, key, algorithm="RS256", headers={"kid": "test"})

    good = {"iss": sso.issuer, "aud": sso.client_id, "exp": int(time.time()) + 60}
    assert backend.get_payload_data(token(**good), key.public_key())["sub"] == "alice"
    for bad in [
        {**good, "iss": "http://127.0.0.1:1"},
        {**good, "aud": "another-client"},
        {**good, "aud": [sso.client_id, "another-client"]},  # several audiences, and azp not ours
        {k: v for k, v in good.items() if k != "exp"},
    ]:
        with pytest.raises(SuspiciousOperation):
            backend.get_payload_data(token(**bad), key.public_key())


def test_a_live_update_answered_after_logout_does_not_cut_the_providers_logout_short(
    page: Page, live_server, sso: Provider  # type: ignore[no-untyped-def]
) -> None:
    """Found by CI: the dashboard's live part, fetched after "Log out" had ended the session but
    before the logout's answer came, was sent to the login page, and live.js reloaded the page over
    the logout's own navigation: the browser showed the login and the provider's session stayed.
    Here the logout's answer is held for 2 s, and the page's live part asks meanwhile, as soon as
    the session has ended (as an event arriving then would make it)."""
    base = live_server.url
    sso_sign_in(page, base, sso, "bob")
    page.wait_for_function("() => window.extadminLive !== undefined")
    page.evaluate("""() => window.addEventListener("beforeunload", () => {
        const live = window.extadminLive;
        const ask = () => fetch(live.url, {headers: {"HX-Request": "true"}, credentials: "same-origin"})
          .then((r) => (r.redirected ? live.refresh() : window.setTimeout(ask, 50)));
        ask();
    })""")

    def logout_answered_late(route) -> None:  # type: ignore[no-untyped-def]
        response = route.fetch(max_redirects=0)  # the console has ended the session now
        time.sleep(2.0)
        route.fulfill(response=response)

    page.route("**/accounts/logout/", logout_answered_late)
    page.click("button:has-text('Log out')")
    expect(page).to_have_url(re.compile(re.escape(sso.issuer) + "/session/end"))
    page.click("button:has-text('Yes, sign me out')")
    expect(page).to_have_url(base + "/accounts/login/")
    page.click("#sso-sign-in")
    expect(page.locator("input[name=login]")).to_be_visible()  # the provider's session ended too


def test_it_refuses_a_user_deactivated_in_extadmin(page: Page, live_server, sso: Provider) -> None:  # type: ignore[no-untyped-def]
    base = live_server.url
    sso_sign_in(page, base, sso, "bob")
    page.click("button:has-text('Log out')")
    page.click("button:has-text('Yes, sign me out')")
    User.objects.filter(username="bob").update(is_active=False)

    page.click("#sso-sign-in")
    provider_sign_in(page, sso, "bob")
    expect(page).to_have_url(base + "/accounts/login/")
    expect(page.locator(".messages")).to_have_text(
        f"Sign-in with {PROVIDER_NAME} did not complete: this account is disabled in extadmin."
    )
    page.goto(base + "/")
    expect(page).to_have_url(f"{base}/accounts/login/?next=/")
