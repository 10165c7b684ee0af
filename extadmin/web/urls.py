from __future__ import annotations

from django.urls import path

from extadmin.web import live, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("live/events/", live.live_events, name="live-events"),
    path("extensions/upload/", views.package_upload, name="package-upload"),
    path("extensions/<str:name>/", views.package_detail, name="package"),
    path("extensions/<str:name>/delete/", views.package_delete, name="package-delete"),
]
