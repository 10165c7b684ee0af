"""The single sign-on settings, read from the environment (pure: settings.py calls it).

SSO is off unless ``EXTADMIN_OIDC_ISSUER`` is set; set, it needs the client's id and secret, and a
group map naming only extadmin's roles. A mistake refuses to start, naming the setting: a typo must
not quietly leave everyone without a role, or give one to the wrong group.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from extadmin.sso.roles import ROLES

WELL_KNOWN = "/.well-known/openid-configuration"


@dataclass(frozen=True)
class OidcConfig:
    issuer: str  # as configured; the discovery document's own ``issuer`` is the one tokens must carry
    discovery_url: str
    client_id: str
    client_secret: str = field(repr=False)  # never in a repr, so never in a traceback or a log line
    scopes: str = "openid email profile"
    groups_claim: str = "groups"
    group_map: Mapping[str, str] = field(default_factory=dict)  # IdP group → extadmin role
    provider_name: str = ""
    sign_algo: str = "RS256"
    timeout: float = 10.0

    def roles_of(self, groups: list[str]) -> list[str]:
        return sorted({self.group_map[g] for g in groups if g in self.group_map})


def oidc_config(environ: Mapping[str, str], *, production: bool = False) -> OidcConfig | None:
    issuer = environ.get("EXTADMIN_OIDC_ISSUER", "").strip()
    if not issuer:
        return None
    issuer, discovery = _issuer_and_discovery(issuer, production=production)
    client_id = _required(environ, "EXTADMIN_OIDC_CLIENT_ID")
    client_secret = _required(environ, "EXTADMIN_OIDC_CLIENT_SECRET")
    scopes = environ.get("EXTADMIN_OIDC_SCOPES", "").strip() or "openid email profile"
    if "openid" not in scopes.split():
        raise ImproperlyConfigured(f"EXTADMIN_OIDC_SCOPES must include 'openid', not {scopes!r}")
    return OidcConfig(
        issuer=issuer,
        discovery_url=discovery,
        client_id=client_id,
        client_secret=client_secret,
        scopes=scopes,
        groups_claim=environ.get("EXTADMIN_OIDC_GROUPS_CLAIM", "").strip() or "groups",
        group_map=group_map(environ.get("EXTADMIN_OIDC_GROUP_MAP", "")),
        provider_name=environ.get("EXTADMIN_OIDC_PROVIDER_NAME", "").strip() or urlsplit(issuer).netloc,
        sign_algo=environ.get("EXTADMIN_OIDC_SIGN_ALGO", "").strip() or "RS256",
        timeout=float(environ.get("EXTADMIN_OIDC_TIMEOUT", "") or 10),
    )


def _issuer_and_discovery(value: str, *, production: bool) -> tuple[str, str]:
    """The issuer URL or its discovery document's URL: either names the other. In production only
    https: the tokens and the client secret travel to it."""
    value = value.rstrip("/")
    if urlsplit(value).scheme not in ({"https"} if production else {"https", "http"}):
        raise ImproperlyConfigured(f"EXTADMIN_OIDC_ISSUER must be an https:// URL, not {value!r}")
    if value.endswith(WELL_KNOWN):
        return value.removesuffix(WELL_KNOWN), value
    return value, value + WELL_KNOWN


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(f"{name} must be set when EXTADMIN_OIDC_ISSUER is")
    return value


def group_map(text: str) -> dict[str, str]:
    """``{"ext-admins": "operator", "ext-viewers": "viewer"}``: a JSON object of IdP group → role."""
    if not text.strip():
        return {}
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"EXTADMIN_OIDC_GROUP_MAP is not JSON: {exc}") from None
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise ImproperlyConfigured('EXTADMIN_OIDC_GROUP_MAP must be a JSON object of strings: {"idp-group": "role"}')
    unknown = sorted({v for v in mapping.values() if v not in ROLES})
    if unknown:
        raise ImproperlyConfigured(
            f"EXTADMIN_OIDC_GROUP_MAP names no such role: {', '.join(unknown)} (roles: {', '.join(ROLES)})"
        )
    return mapping
