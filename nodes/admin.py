"""Django admin for nodes: what the agents reported. Read-only: only agents write these."""
from __future__ import annotations

from django.contrib import admin

from extadmin.admin import ReadOnlyAdmin
from nodes.models import ClusterSettings, Node, SyncRun, SyncState


@admin.register(Node)
class NodeAdmin(ReadOnlyAdmin):
    list_display = ["name", "host", "storage_path", "agent_version", "started_at", "last_heartbeat"]
    search_fields = ["name", "host"]


@admin.register(SyncState)
class SyncStateAdmin(ReadOnlyAdmin):
    list_display = ["node", "package_name", "state", "installed_version", "desired_version", "changed_at", "error"]
    list_filter = ["state", "node"]
    search_fields = ["package_name", "error"]


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = ["node", "trigger", "started_at", "finished_at", "outcome", "error"]
    list_filter = ["trigger", "outcome", "node"]


@admin.register(ClusterSettings)
class ClusterSettingsAdmin(ReadOnlyAdmin):
    list_display = ["sync_paused", "paused_at", "paused_by"]
