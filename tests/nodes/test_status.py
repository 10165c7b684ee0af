from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from nodes.models import Node, SyncState
from nodes.status import cluster_document
from tests.nodes.conftest import Importer, Syncer

pytestmark = pytest.mark.django_db


def beat(name: str, *, ago: float = 0) -> None:
    Node.objects.update_or_create(name=name, defaults={"last_heartbeat": timezone.now() - timedelta(seconds=ago)})


def test_it_is_converged_only_when_every_online_node_proved_the_checksum(
    import_package: Importer, sync: Syncer
) -> None:
    alpha = import_package("Alpha")  # node web records it installed locally
    beat("web")
    beat("n1")

    doc = cluster_document()
    assert doc["extensions"][0]["converged"] is False
    assert doc["extensions"][0]["nodes"]["n1"] == {
        "state": "pending", "reported": "", "up_to_date": False, "version": "", "checksum": "", "error": "",
        "retry": "", "failures": 0, "next_retry_at": None, "degraded": False,
    }

    sync()
    beat("n1")
    [ext] = cluster_document()["extensions"]
    assert (ext["name"], ext["version"], ext["checksum"], ext["converged"]) == ("Alpha", "1.0.0", alpha.sha256, True)
    assert ext["nodes"]["n1"] == {
        "state": "installed", "reported": "", "up_to_date": True, "version": "1.0.0", "checksum": alpha.sha256,
        "error": "", "retry": "", "failures": 0, "next_retry_at": None, "degraded": False,
    }


def test_it_never_counts_an_offline_node_and_never_shows_it_installed(import_package: Importer, sync: Syncer) -> None:
    import_package("Alpha")
    sync()
    beat("n1", ago=3600)
    Node.objects.filter(name="web").update(last_heartbeat=None)

    doc = cluster_document()

    assert [n["online"] for n in doc["nodes"]] == [False, False]
    assert doc["extensions"][0]["converged"] is False  # nobody online: nothing proven
    assert doc["extensions"][0]["nodes"]["n1"]["state"] == "offline"
    assert doc["extensions"][0]["nodes"]["n1"]["reported"] == "installed"
    beat("web")
    [ext] = cluster_document()["extensions"]
    assert (ext["converged"], ext["online"], ext["offline"]) == (True, 1, 1)  # n1 offline: not counted


def test_it_shows_an_older_proven_version_as_pending(import_package: Importer, sync: Syncer) -> None:
    import_package("Alpha", "1.0.0")
    sync()
    import_package("Alpha", "1.1.0")
    beat("n1")

    cell = cluster_document()["extensions"][0]["nodes"]["n1"]

    assert (cell["state"], cell["version"]) == ("pending", "1.0.0")


def test_it_reads_in_a_constant_number_of_queries(
    import_package: Importer, django_assert_num_queries
) -> None:  # type: ignore[no-untyped-def]
    for i in range(4):
        import_package(f"P{i}")
    for i in range(5):
        node = Node.objects.create(name=f"x{i}", last_heartbeat=timezone.now())
        SyncState.objects.create(
            node=node, package_name="P0", state="failed", error="disk full", changed_at=timezone.now()
        )

    with django_assert_num_queries(5):  # packages, nodes, states, cluster settings; the pause's who (sync)
        doc = cluster_document()

    assert len(doc["extensions"]) == 4 and len(doc["nodes"]) == 6
    assert doc["extensions"][0]["nodes"]["x3"]["error"] == "disk full"


def test_it_prints_the_document_as_json_and_as_a_table(import_package: Importer, sync: Syncer, capsys) -> None:  # type: ignore[no-untyped-def]
    import_package("Alpha")
    sync()
    beat("n1")

    call_command("cluster_status", "--json")
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"nodes", "extensions", "sync"}
    assert set(doc["nodes"][0]) == {"name", "online", "state", "last_seen", "degraded", "degraded_reason"}
    assert set(doc["extensions"][0]) == {
        "name", "version", "checksum", "state", "converged", "online", "offline", "nodes"
    }

    call_command("cluster_status")
    table = capsys.readouterr().out
    assert "Alpha" in table and "installed" in table
