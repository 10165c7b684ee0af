from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("extadmin.api.urls")),
    path("nodes/", include("nodes.urls")),
    path("", include("extadmin.web.urls")),
]
