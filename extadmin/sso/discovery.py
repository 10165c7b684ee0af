"""The provider's metadata (``/.well-known/openid-configuration``), fetched at the first sign-in and
kept for the life of the process. Read with the standard library: the URLconf imports this module,
so every management command would otherwise pay for an HTTP client it never uses.

Lazily, not at start: a console whose identity provider is down still starts, and its local login
(break-glass) still works. A failed fetch is not kept, so the next sign-in tries again.
"""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

from extadmin.packaging import Refusal
from extadmin.sso.config import OidcConfig

STEP = "sign in"
NEEDED = ("issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")

_lock = threading.Lock()
_documents: dict[str, dict[str, Any]] = {}


class ProviderUnavailable(Refusal):
    status = 502


def provider_metadata(config: OidcConfig) -> dict[str, Any]:
    with _lock:
        document = _documents.get(config.discovery_url)
    if document is None:
        document = _fetch(config)
        with _lock:
            _documents[config.discovery_url] = document
    return document


def provider_metadata_forget() -> None:
    """Fetch again at the next sign-in (the tests start a new provider; an operator restarts)."""
    with _lock:
        _documents.clear()


def _fetch(config: OidcConfig) -> dict[str, Any]:
    where = f"the identity provider's discovery document {config.discovery_url}"
    try:
        # The scheme is http(s): config refuses any other.
        with urllib.request.urlopen(config.discovery_url, timeout=config.timeout) as response:  # noqa: S310
            document = json.loads(response.read(1024 * 1024))
    except urllib.error.HTTPError as exc:
        raise ProviderUnavailable(STEP, f"{where} could not be read (HTTP {exc.code})") from None
    except urllib.error.URLError as exc:
        raise ProviderUnavailable(STEP, f"{where} could not be read ({exc.reason})") from None
    except (OSError, ValueError) as exc:
        raise ProviderUnavailable(STEP, f"{where} could not be read ({type(exc).__name__})") from None
    if not isinstance(document, dict) or any(not isinstance(document.get(k), str) for k in NEEDED):
        raise ProviderUnavailable(STEP, f"{where} lacks one of {', '.join(NEEDED)}")
    # OpenID Connect Discovery 1.0, §4.3: the document's issuer is exactly the one configured.
    if document["issuer"].rstrip("/") != config.issuer:
        raise ProviderUnavailable(STEP, f"{where} names the issuer {document['issuer']!r}, not {config.issuer!r}")
    return document
