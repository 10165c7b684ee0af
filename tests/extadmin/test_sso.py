"""Single sign-on without a browser: the settings, the roles, the sign-in's one write, and the doors
while SSO is off, refused or unreachable. The whole flow against a real provider, in Chromium, is
``tests/browser/test_sso.py``."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from extadmin.sso.backend import OidcBackend
from extadmin.sso.config import OidcConfig, oidc_config
from extadmin.sso.discovery import provider_metadata_forget
from extadmin.sso.library import BACKEND
from extadmin.sso.models import OidcIdentity
from extadmin.sso.roles import ACT, ROLES
from extadmin.sso.services import claimed_groups, sso_user_sign_in
from tests.processes import free_port

pytestmark = pytest.mark.django_db

ISSUER = "https://idp.example.test"
ENV = {"EXTADMIN_OIDC_ISSUER": ISSUER, "EXTADMIN_OIDC_CLIENT_ID": "extadmin", "EXTADMIN_OIDC_CLIENT_SECRET": "s3cr3t"}
CONFIG = OidcConfig(
    issuer=ISSUER,
    discovery_url=ISSUER + "/.well-known/openid-configuration",
    client_id="extadmin",
    client_secret="s3cr3t",
    group_map={"ext-admins": "operator", "ext-viewers": "viewer"},
    provider_name="Example IdP",
)


@pytest.fixture
def sso_on(settings) -> OidcConfig:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_OIDC = CONFIG
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend", "extadmin.sso.backend.OidcBackend"]
    provider_metadata_forget()
    return CONFIG


def sign_in(sub: str, groups: list[str], **claims: str) -> User:
    return sso_user_sign_in(config=CONFIG, issuer=ISSUER, claims={"sub": sub, "groups": groups, **claims})


def test_it_is_off_unless_an_issuer_is_set() -> None:
    assert oidc_config({}) is None
    config = oidc_config({**ENV, "EXTADMIN_OIDC_GROUP_MAP": '{"ext-admins": "operator"}'})
    assert config is not None
    assert config.discovery_url == ISSUER + "/.well-known/openid-configuration"
    assert config.scopes == "openid email profile" and config.groups_claim == "groups"
    assert config.provider_name == "idp.example.test"
    assert "s3cr3t" not in repr(config)


def test_it_takes_the_issuer_or_its_discovery_url() -> None:
    config = oidc_config({**ENV, "EXTADMIN_OIDC_ISSUER": ISSUER + "/.well-known/openid-configuration"})
    assert config is not None and config.issuer == ISSUER


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"EXTADMIN_OIDC_CLIENT_ID": ""}, "EXTADMIN_OIDC_CLIENT_ID must be set"),
        ({"EXTADMIN_OIDC_CLIENT_SECRET": ""}, "EXTADMIN_OIDC_CLIENT_SECRET must be set"),
        ({"EXTADMIN_OIDC_GROUP_MAP": "{ext-admins: operator}"}, "EXTADMIN_OIDC_GROUP_MAP is not JSON"),
        ({"EXTADMIN_OIDC_GROUP_MAP": '["operator"]'}, "EXTADMIN_OIDC_GROUP_MAP must be a JSON object"),
        ({"EXTADMIN_OIDC_GROUP_MAP": '{"ext-admins": "admin"}'}, "names no such role: admin"),
        ({"EXTADMIN_OIDC_SCOPES": "email profile"}, "EXTADMIN_OIDC_SCOPES must include 'openid'"),
        ({"EXTADMIN_OIDC_ISSUER": "idp.example.test"}, "EXTADMIN_OIDC_ISSUER must be an https:// URL"),
    ],
)
def test_it_refuses_to_start_on_a_setting_it_cannot_use(extra: dict[str, str], named: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=named):
        oidc_config({**ENV, **extra})


def test_it_refuses_a_plain_http_issuer_in_production() -> None:
    env = {**ENV, "EXTADMIN_OIDC_ISSUER": "http://idp.example.test"}
    assert oidc_config(env) is not None
    with pytest.raises(ImproperlyConfigured, match="https://"):
        oidc_config(env, production=True)


def test_it_defines_the_roles_as_groups_with_their_permissions() -> None:
    operator, viewer = Group.objects.get(name="operator"), Group.objects.get(name="viewer")
    granted = {f"{p.content_type.app_label}.{p.codename}" for p in operator.permissions.all()}
    assert granted == set(ROLES["operator"])
    assert not {f"{p.content_type.app_label}.{p.codename}" for p in viewer.permissions.all()} & set(ACT)


def test_it_sets_the_groups_from_the_claim_at_every_sign_in() -> None:
    user = sign_in("u-1", ["ext-admins", "unrelated"], preferred_username="alice", email="alice@example.test")
    assert [g.name for g in user.groups.all()] == ["operator"]
    assert User.objects.get(pk=user.pk).has_perm("extadmin.add_extensionpackage")
    user.groups.add(Group.objects.create(name="given-by-hand"))

    again = sign_in("u-1", ["ext-viewers"], preferred_username="alice")
    assert again.pk == user.pk
    assert [g.name for g in again.groups.all()] == ["viewer"]
    assert not User.objects.get(pk=user.pk).has_perm("extadmin.add_extensionpackage")
    assert OidcIdentity.objects.get(user=user).last_groups == ["ext-viewers"]

    none = sign_in("u-1", [])
    assert not none.groups.exists() and not User.objects.get(pk=user.pk).get_all_permissions()


def test_it_matches_users_by_subject_never_by_email_or_name() -> None:
    local = User.objects.create_superuser("alice", email="alice@example.test", password="local-pw-1")
    sso = sign_in("u-1", ["ext-admins"], preferred_username="alice", email="alice@example.test")
    assert sso.pk != local.pk and sso.username == "alice-sso" and not sso.has_usable_password()
    other = sign_in("u-2", [], preferred_username="alice", email="alice@example.test")
    assert other.pk not in {local.pk, sso.pk} and other.username == "alice-sso2"
    # A changed address at the provider is still the same person: the subject did not change.
    assert sign_in("u-1", [], email="alice@new.example.test").pk == sso.pk


def test_it_recreates_a_role_deleted_in_the_admin_at_the_next_sign_in() -> None:
    Group.objects.filter(name="operator").delete()
    user = sign_in("u-1", ["ext-admins"], preferred_username="alice")
    assert User.objects.get(pk=user.pk).has_perm("nodes.change_clustersettings")


def test_it_answers_404_and_shows_only_the_local_form_while_off(client: Client) -> None:
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and b"Sign in with" not in page.content and b'id="id_username"' in page.content
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404


def test_it_shows_the_provider_beside_the_local_form(client: Client, sso_on: OidcConfig) -> None:
    page = client.get("/accounts/login/?next=/nodes/")
    assert b"Sign in with Example IdP" in page.content and b'href="/oidc/authenticate/?next=/nodes/"' in page.content
    assert b'id="id_username"' in page.content
    assert b"s3cr3t" not in page.content


def test_it_refuses_an_answer_this_browser_never_asked_for(client: Client, sso_on: OidcConfig) -> None:
    response = client.get("/oidc/callback/?code=stolen-code&state=forged")
    assert response.status_code == 400
    assert b"sign in</strong>: this answer from the identity provider belongs to no sign-in" in response.content
    assert "_auth_user_id" not in client.session


def test_it_refuses_sign_in_while_the_provider_cannot_be_reached(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    down = f"http://127.0.0.1:{free_port()}"
    settings.EXTADMIN_OIDC = OidcConfig(
        issuer=down, discovery_url=down + "/.well-known/openid-configuration", client_id="c", client_secret="s3cr3t"
    )
    provider_metadata_forget()
    response = client.get("/oidc/authenticate/")
    assert response.status_code == 502
    assert b"sign in</strong>: the identity provider&#x27;s discovery document" in response.content
    assert b"could not be read ([Errno 111] Connection refused)" in response.content
    # Break-glass: the local login still works.
    User.objects.create_user("admin", password="break-glass-pw-1")
    assert client.post("/accounts/login/", {"username": "admin", "password": "break-glass-pw-1"}).status_code == 302
    assert client.get("/").status_code == 200


def test_it_logs_a_local_user_out_locally_only(client: Client, sso_on: OidcConfig) -> None:
    User.objects.create_user("admin", password="break-glass-pw-1")
    client.login(username="admin", password="break-glass-pw-1")
    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    ("value", "groups"),
    [(["a", "b"], ["a", "b"]), ("a b,c", ["a", "b", "c"]), (None, []), ({"a": 1}, []), (["a", 3], ["a"])],
)
def test_it_reads_the_groups_claim_as_a_list_or_a_string(value: object, groups: list[str]) -> None:
    assert claimed_groups({"groups": value}, "groups") == groups


def test_it_names_the_backend_the_logout_looks_for() -> None:
    # The views name the backend by its path so that they (and the URLconf) never import it.
    assert f"{OidcBackend.__module__}.{OidcBackend.__qualname__}" == BACKEND
