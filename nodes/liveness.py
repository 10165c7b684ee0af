"""When is a node online? One rule for the dashboard, the API and cluster_status."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

OFFLINE_AFTER_HEARTBEATS = 3


def online_cutoff(now: datetime | None = None) -> datetime:
    """A node whose last heartbeat is older than this is offline: three heartbeat intervals."""
    interval = settings.EXTADMIN_HEARTBEAT_INTERVAL * OFFLINE_AFTER_HEARTBEATS
    return (now or timezone.now()) - timedelta(seconds=interval)


def is_online(last_heartbeat: datetime | None, now: datetime | None = None) -> bool:
    return last_heartbeat is not None and last_heartbeat >= online_cutoff(now)
