from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from extadmin.sso.views import LogoutView
from extadmin.web.accounts import PasswordResetView
from extadmin.web.metrics import metrics
from extadmin.web.views import favicon

urlpatterns = [
    path("admin/", admin.site.urls),
    # Before Django's own: the reset mail's links use the configured host, never the request's.
    path("accounts/password_reset/", PasswordResetView.as_view(), name="password_reset"),
    # Before Django's own: after a single sign-on, logout also ends the provider's session.
    path("accounts/logout/", LogoutView.as_view(), name="logout"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("oidc/", include("extadmin.sso.urls")),
    path("api/", include("extadmin.api.urls")),
    path("nodes/", include("nodes.urls")),
    path("favicon.ico", favicon),  # browsers ask for it at the root; pages link the static one
    path("metrics", metrics, name="metrics"),  # Prometheus: a bearer token or loopback, no session
    path("webhooks/", include("webhooks.urls")),
    path("rollouts/", include("rollouts.urls")),
    path("", include("extadmin.web.urls")),
]

handler404 = "extadmin.web.errors.not_found"
