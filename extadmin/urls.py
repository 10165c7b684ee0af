from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from extadmin.web.accounts import PasswordResetView

urlpatterns = [
    path("admin/", admin.site.urls),
    # Before Django's own: the reset mail's links use the configured host, never the request's.
    path("accounts/password_reset/", PasswordResetView.as_view(), name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("extadmin.api.urls")),
    path("nodes/", include("nodes.urls")),
    path("webhooks/", include("webhooks.urls")),
    path("", include("extadmin.web.urls")),
]
