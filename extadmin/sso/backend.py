"""mozilla-django-oidc's backend, fed by the discovery document and the ``EXTADMIN_OIDC`` setting.

What it adds to the library: the endpoints from discovery (the library wants each one as a setting),
the ID token's issuer and audience checked (the library checks signature, expiry and nonce only),
userinfo's ``sub`` held to the ID token's, users matched by subject (``services``), and any failure
of the exchange turned into a refused sign-in, logged by its kind only: the library's own errors can
carry the token endpoint's answer, and a traceback its locals, the client secret among them.
"""
from __future__ import annotations

import logging
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from extadmin.packaging import Refusal
from extadmin.sso.config import OidcConfig
from extadmin.sso.discovery import provider_metadata
from extadmin.sso.library import oidc_setting
from extadmin.sso.services import sso_user_sign_in

log = logging.getLogger(__name__)

def _lazy(attr: str) -> property:
    return property(lambda self: oidc_setting(attr, None))


class OidcBackend(OIDCAuthenticationBackend):  # type: ignore[misc]
    get_settings = staticmethod(oidc_setting)
    OIDC_OP_TOKEN_ENDPOINT = _lazy("OIDC_OP_TOKEN_ENDPOINT")
    OIDC_OP_USER_ENDPOINT = _lazy("OIDC_OP_USER_ENDPOINT")
    OIDC_OP_JWKS_ENDPOINT = _lazy("OIDC_OP_JWKS_ENDPOINT")
    OIDC_RP_CLIENT_ID = _lazy("OIDC_RP_CLIENT_ID")
    OIDC_RP_CLIENT_SECRET = _lazy("OIDC_RP_CLIENT_SECRET")
    OIDC_RP_SIGN_ALGO = _lazy("OIDC_RP_SIGN_ALGO")
    OIDC_RP_IDP_SIGN_KEY = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The library reads every endpoint here; Django builds a backend for each request of a signed-in
        # user, so they are read only when a sign-in needs them: a provider that is down (or not yet
        # discovered) never turns a page of a user already signed in into an error.
        self.UserModel = get_user_model()

    @property
    def config(self) -> OidcConfig:
        config: OidcConfig | None = settings.EXTADMIN_OIDC
        assert config is not None, "the backend is installed only with EXTADMIN_OIDC set"
        return config

    @sensitive_variables()
    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> User | None:
        try:
            user: User | None = super().authenticate(request, **kwargs)
        except (requests.RequestException, SuspiciousOperation, jwt.PyJWTError, Refusal, KeyError, ValueError) as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            log.warning("sso: sign-in refused: %s%s", type(exc).__name__, f" (HTTP {status})" if status else "")
            if request is not None:
                request.sso_refusal = exc if isinstance(exc, Refusal) else None  # type: ignore[attr-defined]
            return None
        return user

    def get_payload_data(self, token: bytes, key: Any) -> dict[str, Any]:
        payload: dict[str, Any] = super().get_payload_data(token, key)
        issuer = provider_metadata(self.config)["issuer"]
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if payload.get("iss") != issuer:
            raise SuspiciousOperation("the ID token was issued by another issuer")
        client = self.config.client_id
        if client not in audiences or (len(audiences) > 1 and payload.get("azp") != client):
            raise SuspiciousOperation("the ID token is meant for another client")
        if "exp" not in payload:
            raise SuspiciousOperation("the ID token never expires")
        return payload

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        userinfo: dict[str, Any] = super().get_userinfo(access_token, id_token, payload)
        # OpenID Connect Core 1.0, §5.3.2: a userinfo answer for another subject must not be used.
        if userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("userinfo names another subject than the ID token")
        # Groups may come in either (some providers put them only in the ID token).
        return {**payload, **userinfo}

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> User:
        claims = self.get_userinfo(access_token, id_token, payload)
        return sso_user_sign_in(config=self.config, issuer=payload["iss"], claims=claims)
