from __future__ import annotations

from django.urls import path

from extadmin.web import live, versions, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("live/events/", live.live_events, name="live-events"),
    path("extensions/upload/", views.package_upload, name="package-upload"),
    path("extensions/<str:name>/", views.package_detail, name="package"),
    path("extensions/<str:name>/delete/", views.package_delete, name="package-delete"),
    path("extensions/<str:name>/rollback/", versions.package_rollback_view, name="package-rollback"),
    path(
        "extensions/<str:name>/versions/<str:version>/quarantine/", versions.package_quarantine_view,
        name="package-quarantine",
    ),
]
