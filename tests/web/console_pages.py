"""A cluster with every state a page shows, a superuser's client, and the pages to read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from extadmin.models import ExtensionPackage
from extadmin.operations import Actor
from extadmin.removal import package_remove
from nodes.models import Node, SyncRun, SyncState

Imported = Callable[..., ExtensionPackage]


@pytest.fixture
def admin_client(db) -> Client:  # type: ignore[no-untyped-def]
    c = Client()
    c.force_login(User.objects.create_superuser("admin", password="pw-admin-1"))
    return c


@pytest.fixture
def cluster(imported: Imported) -> None:
    """Packages in every state a page shows: installed, a dependent, removed and still held, failed."""
    imported("Base", "1.2.0")
    imported("Consumer", "2.0.0", depends_on="Base:1.0.0")
    imported("Gone", "0.9.0")
    package_remove(name="Gone", actor=Actor(via="browser"))
    now = timezone.now()
    n2 = Node.objects.create(name="n2", last_heartbeat=now, storage_path="/srv/n2")
    Node.objects.create(name="n3", last_heartbeat=now - timedelta(hours=3), storage_path="/srv/n3")
    SyncState.objects.create(node=n2, package_name="Base", state="failed", error="checksum mismatch",
                             changed_at=now, started_at=now - timedelta(seconds=4), finished_at=now)
    SyncState.objects.create(node=n2, package_name="Gone", state="installed", changed_at=now)
    SyncRun.objects.create(node=n2, trigger="periodic", started_at=now - timedelta(seconds=5), finished_at=now,
                           outcome="failed", error="Base: checksum mismatch")


PAGES = ["/", "/nodes/", "/nodes/web/", "/nodes/n2/", "/extensions/Base/", "/extensions/Consumer/",
         "/extensions/Gone/", "/extensions/Base/delete/", "/extensions/upload/", "/webhooks/"]


