"""What mozilla-django-oidc asks its settings for, answered from ``EXTADMIN_OIDC`` and the provider's
discovery document (the library wants each endpoint as a setting of its own). Imports neither the
library's backend nor an HTTP client, so the views and the URLconf stay light."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from mozilla_django_oidc.utils import import_from_settings

from extadmin.sso.config import OidcConfig
from extadmin.sso.discovery import provider_metadata

BACKEND = "extadmin.sso.backend.OidcBackend"

# mozilla-django-oidc's setting → the discovery document's field.
ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


def oidc_setting(attr: str, *default: Any) -> Any:
    """What the library asks for, answered from ``EXTADMIN_OIDC`` and the discovery document."""
    config: OidcConfig | None = settings.EXTADMIN_OIDC
    if config is None:
        return import_from_settings(attr, *default)
    if attr in ENDPOINTS:
        return provider_metadata(config)[ENDPOINTS[attr]]
    fixed = {
        "OIDC_RP_CLIENT_ID": config.client_id,
        "OIDC_RP_CLIENT_SECRET": config.client_secret,
        "OIDC_RP_SCOPES": config.scopes,
        "OIDC_RP_SIGN_ALGO": config.sign_algo,
        "OIDC_TIMEOUT": config.timeout,
        "OIDC_USE_PKCE": True,
        "OIDC_USE_NONCE": True,
        "OIDC_TOKEN_USE_BASIC_AUTH": True,
        # No token kept in the session: nothing to leak, and logout needs none (see views).
        "OIDC_STORE_ACCESS_TOKEN": False,
        "OIDC_STORE_ID_TOKEN": False,
        "OIDC_AUTHENTICATION_CALLBACK_URL": "oidc_authentication_callback",
    }
    if attr in fixed:
        return fixed[attr]
    return import_from_settings(attr, *default)
