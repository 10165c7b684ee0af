"""The sign-in doors: mozilla-django-oidc's views answered from ``EXTADMIN_OIDC`` (404 while SSO is
off), a refused sign-in shown as a refusal, and a logout that also ends the provider's session."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.views.generic import View
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from extadmin.packaging import Refusal
from extadmin.sso.config import OidcConfig
from extadmin.sso.discovery import STEP, provider_metadata
from extadmin.sso.library import BACKEND, oidc_setting

FORGED_STATE = (
    "this answer from the identity provider belongs to no sign-in started in this browser (its state "
    "does not match); start again from the login page"
)


def sso_config() -> OidcConfig:
    config: OidcConfig | None = settings.EXTADMIN_OIDC
    if config is None:
        raise Http404("single sign-on is not configured")
    return config


def refused(request: HttpRequest, refusal: Refusal) -> HttpResponse:
    return render(request, "refused.html", {"refusal": refusal}, status=refusal.status)


class SignInView(OIDCAuthenticationRequestView):  # type: ignore[misc]
    """``/oidc/authenticate/``: to the provider's authorization endpoint, with state, nonce and PKCE."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, **kwargs: Any) -> None:
        # The library reads its settings here, where neither "off" (404) nor "provider down" can answer.
        View.__init__(self, **kwargs)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        config = sso_config()
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider_metadata(config)["authorization_endpoint"]
        except Refusal as refusal:
            return refused(request, refusal)
        self.OIDC_RP_CLIENT_ID = config.client_id
        response: HttpResponse = super().dispatch(request, *args, **kwargs)
        return response


class CallbackView(OIDCAuthenticationCallbackView):  # type: ignore[misc]
    """``/oidc/callback/``: the provider's answer; only one this browser's session asked for."""

    get_settings = staticmethod(oidc_setting)

    def get(self, request: HttpRequest) -> HttpResponse:
        sso_config()
        state = request.GET.get("state")
        if "code" in request.GET and state not in request.session.get("oidc_states", {}):
            return refused(request, Refusal(STEP, FORGED_STATE))
        response: HttpResponse = super().get(request)
        return response

    def login_failure(self) -> HttpResponse:
        request = self.request
        refusal = getattr(request, "sso_refusal", None)
        if isinstance(refusal, Refusal):
            return refused(request, refusal)
        name = sso_config().provider_name
        reason = request.GET.get("error_description") or request.GET.get("error") or "its answer could not be verified"
        if getattr(self, "user", None) is not None and not self.user.is_active:
            reason = "this account is disabled in extadmin"
        messages.error(request, f"Sign-in with {name} did not complete: {reason}.")
        return HttpResponseRedirect(resolve_url(settings.LOGIN_URL))


def end_session_url(request: HttpRequest) -> str | None:
    """Where the provider ends its own session too (RP-initiated logout), for a user signed in through
    it and a provider that offers it; by client id, not by ID token: extadmin keeps no token."""
    config: OidcConfig | None = settings.EXTADMIN_OIDC
    if config is None or request.session.get(BACKEND_SESSION_KEY) != BACKEND:
        return None
    try:
        endpoint = provider_metadata(config).get("end_session_endpoint")
    except Refusal:
        return None  # the provider is down: the local session still ends
    if not isinstance(endpoint, str):
        return None
    back = request.build_absolute_uri(resolve_url(settings.LOGOUT_REDIRECT_URL))
    return f"{endpoint}?{urlencode({'client_id': config.client_id, 'post_logout_redirect_uri': back})}"


class LogoutView(auth_views.LogoutView):
    """Django's logout (POST), then, after a single sign-on, the provider's logout."""

    provider_logout: str | None = None

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.provider_logout = end_session_url(request)
        return super().post(request, *args, **kwargs)

    def get_success_url(self) -> str:
        return self.provider_logout or super().get_success_url()
