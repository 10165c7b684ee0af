from __future__ import annotations

from django.urls import path

from nodes import views

urlpatterns = [
    path("", views.nodes_page, name="nodes"),
    path("<str:name>/", views.node_page, name="node"),
    path("<str:name>/forget/", views.node_forget_page, name="node-forget"),
    path("<str:name>/sync/", views.node_sync_now_page, name="node-sync"),
    path("<str:name>/retry/", views.node_retry_page, name="node-retry"),
]
