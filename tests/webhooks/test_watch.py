"""The watcher: events only the agents' rows reveal, each emitted once, from the cluster as every door sees it."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from extadmin.models import ExtensionPackage
from nodes.models import Node, SyncState
from nodes.services import node_seen
from nodes.sync_states import sync_state_mark
from tests.nodes.conftest import Importer, Syncer
from tests.webhooks.conftest import EndpointMaker
from webhooks.models import WebhookDelivery
from webhooks.watch import watch_scan

pytestmark = pytest.mark.django_db


def data_of(event: str) -> list[dict[str, object]]:
    return [json.loads(d.body)["data"] for d in WebhookDelivery.objects.filter(event=event).order_by("id")]


def test_it_emits_package_converged_once_per_checksum(
    endpoint: EndpointMaker, import_package: Importer, sync: Syncer
) -> None:
    endpoint("package.converged")
    sync()  # n1 registers (online)
    alpha = import_package("Alpha")
    assert watch_scan() == []  # web holds it, n1 not yet
    sync()
    assert watch_scan() == ["package.converged"]
    assert watch_scan() == []
    sync()
    assert watch_scan() == []  # still the same checksum: once
    [data] = data_of("package.converged")
    assert data["name"] == "Alpha" and data["checksum"] == alpha.sha256 and data["nodes"] == ["n1", "web"]
    newer = import_package("Alpha", "1.1.0")
    sync()
    assert watch_scan() == ["package.converged"]
    assert data_of("package.converged")[-1]["checksum"] == newer.sha256


def test_it_emits_node_offline_when_a_node_seen_online_goes_silent(endpoint: EndpointMaker, sync: Syncer) -> None:
    endpoint("node.offline")
    sync()
    watch_scan()
    Node.objects.filter(name="n1").update(last_heartbeat=timezone.now() - timedelta(hours=1))
    assert watch_scan() == ["node.offline"]
    assert watch_scan() == []
    node_seen(name="n1")
    assert watch_scan() == []  # back online: recorded, no event
    Node.objects.filter(name="n1").update(last_heartbeat=timezone.now() - timedelta(hours=1))
    assert watch_scan() == ["node.offline"]
    assert [d["node"] for d in data_of("node.offline")] == ["n1", "n1"]


def test_it_emits_node_failed_when_a_cell_turns_failed(
    endpoint: EndpointMaker, import_package: Importer, sync: Syncer
) -> None:
    endpoint("node.failed")
    sync()
    alpha = import_package("Alpha")
    node = Node.objects.get(name="n1")
    sync_state_mark(node=node, name="Alpha", version="1.0.0", sha256=alpha.sha256, state=SyncState.State.FAILED,
                    error="disk full")
    assert watch_scan() == ["node.failed"]
    assert watch_scan() == []
    [data] = data_of("node.failed")
    assert data == {"node": "n1", "package": "Alpha", "version": "1.0.0", "checksum": alpha.sha256,
                    "error": "disk full"}
    sync()  # repaired
    watch_scan()
    sync_state_mark(node=node, name="Alpha", version="1.0.0", sha256=alpha.sha256, state=SyncState.State.FAILED,
                    error="again")
    assert watch_scan() == ["node.failed"]


def test_it_emits_node_degraded_with_the_dashboards_sentence(
    endpoint: EndpointMaker, import_package: Importer, sync: Syncer, settings  # type: ignore[no-untyped-def]
) -> None:
    settings.EXTADMIN_DEGRADED_AFTER = 60.0
    endpoint("node.degraded")
    sync()
    pump = import_package("Pump", "1.2.0")
    node = Node.objects.get(name="n1")
    sync_state_mark(node=node, name="Pump", version="1.2.0", sha256=pump.sha256, state=SyncState.State.FAILED,
                    error="disk full")
    assert "node.degraded" not in watch_scan()  # imported just now: nobody is late yet (failed, though)
    ExtensionPackage.objects.filter(pk=pump.pk).update(imported_at=timezone.now() - timedelta(seconds=120))
    assert watch_scan() == ["node.degraded"]
    assert watch_scan() == []
    assert data_of("node.degraded") == [{
        "node": "n1", "reason": "n1 has not installed Pump 1.2.0 within 1 min of its import: sync failed: disk full",
    }]
    sync()  # repaired: no longer degraded, and it may fire again later
    assert "node.degraded" not in watch_scan()


def test_it_records_facts_even_without_any_endpoint(import_package: Importer, sync: Syncer) -> None:
    sync()
    import_package("Alpha")
    sync()
    assert watch_scan() == ["package.converged"]
    assert not WebhookDelivery.objects.exists()
