"""``/nodes/``: every node, its state word, last seen, agent, storage and its packages' states."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from extadmin.models import ExtensionPackage
from nodes.models import Node, SyncState
from nodes.presenters import moment_text

pytestmark = pytest.mark.django_db

Imported = Callable[..., ExtensionPackage]


def test_it_sends_anonymous_users_to_login(client: Client) -> None:
    response = client.get(reverse("nodes"))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/nodes/")


def test_it_lists_every_node_with_its_state_agent_and_package_counts(
    viewer_client: Client, imported: Imported
) -> None:
    imported("One")
    imported("Two")
    now = timezone.now()
    Node.objects.filter(name="web").update(
        last_heartbeat=now, host="console-1", pid=4242, agent_version="1.2.3", storage_path="/srv/web"
    )
    away = Node.objects.create(name="away", last_heartbeat=now - timedelta(hours=1), storage_path="/srv/away")
    SyncState.objects.create(node=away, package_name="One", state="failed", error="disk full", changed_at=now)
    busy = Node.objects.create(name="busy", last_heartbeat=now)
    SyncState.objects.create(node=busy, package_name="One", state="syncing", changed_at=now)

    html = viewer_client.get(reverse("nodes")).content.decode()

    assert '<a href="/nodes/">Nodes</a>' in html  # in the header's menu
    assert '<tr data-node="web" data-state="online">' in html
    assert '<tr data-node="away" data-state="offline">' in html
    assert moment_text(Node.objects.get(name="web").last_heartbeat) in html and " UTC" in html
    assert "console-1" in html and "pid 4242" in html and "agent 1.2.3" in html and "/srv/web" in html
    web = html[html.index('data-node="web"'):]
    assert '2 installed</span>' in web[: web.index("</tr>")]
    away_row = html[html.index('data-node="away"'):]
    assert '2 offline</span>' in away_row[: away_row.index("</tr>")]
    busy_row = html[html.index('data-node="busy"'):]
    busy_row = busy_row[: busy_row.index("</tr>")]
    assert '1 syncing</span>' in busy_row and '1 pending</span>' in busy_row
    assert 'href="/nodes/busy/"' in busy_row


@pytest.mark.parametrize("name", ["rack/1", "", "a b\tc"])
def test_it_never_fails_on_a_node_name_no_url_can_carry(viewer_client: Client, imported: Imported, name: str) -> None:
    """Old rows from before registration checked names: listed, never a 500."""
    imported("Held")
    odd = Node.objects.create(name=name, last_heartbeat=timezone.now())
    SyncState.objects.create(node=odd, package_name="Held", state="installed", changed_at=timezone.now())
    for url in (reverse("nodes"), "/", reverse("package", args=["Held"])):
        response = viewer_client.get(url)
        assert response.status_code == 200, url


def test_it_shows_an_empty_cluster(viewer_client: Client) -> None:
    assert "No node has registered yet" in viewer_client.get(reverse("nodes")).content.decode()
