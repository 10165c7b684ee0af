"""``/metrics`` through Django's test client on the real database: read back with Prometheus's own
text parser, the figures are the cluster's; a token, or a loopback client, and never a session."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from extadmin.models import ExtensionPackage
from extadmin.operations import Actor
from extadmin.packaging import Refusal
from nodes.cluster import cluster_pause
from nodes.models import Node, SyncRun
from nodes.status import cluster_document
from nodes.sync_states import sync_state_mark
from tests.nodes.conftest import Importer, Syncer
from tests.processes import run_command
from tests.web.cluster import seed_cluster

pytestmark = pytest.mark.django_db

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: Client | None = None, **headers: str) -> Samples:
    response = (client or Client()).get("/metrics", REMOTE_ADDR="127.0.0.1", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    out: Samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def beat(name: str, *, ago: float = 0) -> Node:
    node, _ = Node.objects.update_or_create(
        name=name, defaults={"last_heartbeat": timezone.now() - timedelta(seconds=ago)}
    )
    return node


def imported_ago(package: ExtensionPackage, seconds: float) -> None:
    ExtensionPackage.objects.filter(pk=package.pk).update(imported_at=timezone.now() - timedelta(seconds=seconds))


def test_it_counts_nodes_by_liveness_and_cells_by_state(import_package: Importer, sync: Syncer) -> None:
    import_package("Alpha")
    sync()  # n1 installs it
    beat("web"), beat("n1"), beat("gone", ago=3600)

    m = scrape()

    assert m[("extadmin_nodes", (("state", "online"),))] == 2
    assert m[("extadmin_nodes", (("state", "offline"),))] == 1
    assert m[("extadmin_node_online", (("node", "gone"),))] == 0
    assert m[("extadmin_node_online", (("node", "n1"),))] == 1
    assert m[("extadmin_package_node_states", (("state", "installed"),))] == 2
    assert m[("extadmin_package_node_states", (("state", "offline"),))] == 1
    assert m[("extadmin_packages", (("converged", "true"),))] == 1
    assert m[("extadmin_package_converged", (("package", "Alpha"), ("version", "1.0.0")))] == 1
    assert m[("extadmin_convergence_seconds_count", ())] == 1
    assert m[("extadmin_archive_bytes", ())] == ExtensionPackage.objects.get(name="Alpha").size


def test_it_counts_sync_runs_by_node_and_outcome_and_their_durations(import_package: Importer, sync: Syncer) -> None:
    import_package("Alpha")
    sync()
    sync()
    node = Node.objects.get(name="n1")
    SyncRun.objects.create(node=node, trigger="nudge", started_at=timezone.now() - timedelta(hours=2))  # hung

    m = scrape()

    finished = SyncRun.objects.filter(node=node, outcome="succeeded").count()
    assert m[("extadmin_sync_runs_total", (("node", "n1"), ("outcome", "succeeded")))] == finished == 2
    assert m[("extadmin_sync_duration_seconds_count", ())] == finished
    assert m[("extadmin_sync_duration_seconds_bucket", (("le", "+Inf"),))] == finished
    assert m[("extadmin_syncs_running", ())] == 1
    assert m[("extadmin_syncs_stuck", ())] == 1  # past EXTADMIN_SYNC_DEADLINE (900 s)


def test_it_counts_operations_by_kind_outcome_and_step(import_package: Importer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import_package("Alpha")
    monkeypatch.setenv("EXTADMIN_FAULTS", "import.after_unzip=raise")
    with pytest.raises(Refusal) as refused:
        import_package("Beta")
    step = refused.value.step

    m = scrape()

    assert m[("extadmin_operations_total", (("kind", "import"), ("outcome", "succeeded"), ("step", "")))] == 1
    assert m[("extadmin_operations_total", (("kind", "import"), ("outcome", "failed"), ("step", step)))] == 1


def test_it_counts_nodes_behind_while_paused(import_package: Importer, sync: Syncer) -> None:
    import_package("Alpha")
    Node.objects.update_or_create(name="n1", defaults={"behind_since": timezone.now()})

    m = scrape()

    assert m[("extadmin_nodes_behind", ())] == 1


def test_it_says_which_node_is_degraded_on_every_surface(
    import_package: Importer, settings  # type: ignore[no-untyped-def]
) -> None:
    settings.EXTADMIN_DEGRADED_AFTER = 60.0
    pump = import_package("Pump", "1.2.0")
    import_package("Fresh")  # imported just now: nobody is late for it yet
    n2 = beat("node-2")
    beat("web"), beat("late", ago=3600)  # offline: never degraded
    sync_state_mark(node=n2, name="Pump", version="1.2.0", sha256=pump.sha256, state="failed", error="disk full")
    imported_ago(pump, 120)
    sentence = "node-2 has not installed Pump 1.2.0 within 1 min of its import: sync failed: disk full"
    user = User.objects.create_superuser("ops", "ops@x.invalid", "pw")
    browser, api = Client(), APIClient()
    browser.force_login(user)
    api.force_authenticate(user)

    status, out, _ = run_command("cluster_status", "--json")
    for doc in (json.loads(out), api.get("/api/cluster/").json()):
        nodes = {n["name"]: (n["degraded"], n["degraded_reason"]) for n in doc["nodes"]}
        assert nodes == {"node-2": (True, sentence), "web": (False, ""), "late": (False, "")}
        cells = {e["name"]: {n: c["degraded"] for n, c in e["nodes"].items()} for e in doc["extensions"]}
        assert cells["Pump"] == {"node-2": True, "web": False, "late": False}
        assert cells["Fresh"] == {"node-2": False, "web": False, "late": False}
    detail = api.get("/api/extensions/Pump/").json()
    assert {n["name"]: n["degraded"] for n in detail["nodes"]} == {"node-2": True, "web": False, "late": False}
    html = browser.get("/").content.decode()
    assert html.count(f'data-degraded="{sentence}"') == 2  # the node's column and its Pump cell
    assert "1 degraded" in html
    assert f"DEGRADED: {sentence}" in run_command("cluster_status")[1]
    m = scrape()
    assert m[("extadmin_nodes_degraded", ())] == 1
    assert m[("extadmin_node_degraded", (("node", "node-2"),))] == 1
    assert m[("extadmin_node_degraded", (("node", "late"),))] == 0
    assert status == 0

    imported_ago(pump, 30)  # within the minute: not degraded
    assert not any(n["degraded"] for n in cluster_document()["nodes"])
    assert scrape()[("extadmin_nodes_degraded", ())] == 0


def test_it_is_not_degraded_while_syncing_is_paused(import_package: Importer, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_DEGRADED_AFTER = 60.0
    imported_ago(import_package("Pump"), 3600)
    beat("node-2")
    assert [n["name"] for n in cluster_document()["nodes"] if n["degraded"]] == ["node-2"]
    cluster_pause(actor=Actor(via="cli"))
    assert not any(n["degraded"] for n in cluster_document()["nodes"])  # behind on the operator's word


def test_it_reads_in_a_constant_number_of_queries(
    import_package: Importer, sync: Syncer, django_assert_num_queries
) -> None:  # type: ignore[no-untyped-def]
    import_package("Alpha")
    sync()
    client = Client()
    with django_assert_num_queries(10):  # the snapshot's four, the sync figures' six
        client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    for i in range(5):
        import_package(f"P{i}")
        beat(f"x{i}")
    sync()
    with django_assert_num_queries(10):
        client.get("/metrics", REMOTE_ADDR="127.0.0.1")


# --- who may read it ----------------------------------------------------------------------------


def test_it_answers_only_loopback_clients_without_a_token(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_METRICS_TOKEN = ""
    client = Client()
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.8.9.10").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::ffff:127.0.0.1").status_code == 200


def test_it_judges_the_forwarded_client_behind_a_trusted_proxy(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_METRICS_TOKEN = ""
    client = Client()
    # A proxy on this machine forwards everyone's requests from 127.0.0.1: only its header says who asked.
    settings.EXTADMIN_TRUST_X_FORWARDED_FOR = True
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 200
    # Untrusted, the header is the client's own words: ignored either way.
    settings.EXTADMIN_TRUST_X_FORWARDED_FOR = False
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403


def test_it_needs_the_bearer_token_when_one_is_set(settings, caplog) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_METRICS_TOKEN = "s3cret-metrics-token"
    client = Client()
    missing = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    wrong = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION="Bearer s3cret-metrics-tokeX")
    basic = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION="Basic s3cret-metrics-token")
    right = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token")

    assert (missing.status_code, wrong.status_code, basic.status_code, right.status_code) == (401, 401, 401, 200)
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert b"extadmin_nodes" in right.content
    assert "s3cret" not in caplog.text
    assert all(b"s3cret" not in r.content for r in (missing, wrong, basic))


def test_it_needs_no_login_session(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_METRICS_TOKEN = ""
    response = Client().get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200  # no redirect to the login page
    assert "sessionid" not in response.cookies
    assert Client().post("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 405


def test_it_answers_100_nodes_by_300_packages_with_counts_only(settings) -> None:  # type: ignore[no-untyped-def]
    """Speed: ``bench``-style timing in the report; here, the shape that keeps the series few."""
    # Seeding 30 000 rows outlasts the default 15 s liveness window on a loaded machine: the seeded
    # heartbeats stay fresh for 30 minutes, the three offline nodes' (an hour old) do not.
    settings.EXTADMIN_HEARTBEAT_INTERVAL = 600
    seed_cluster(100, 300, offline=3)

    m = scrape()

    assert m[("extadmin_nodes", (("state", "offline"),))] == 3
    cells = sum(v for (name, _), v in m.items() if name == "extadmin_package_node_states")
    assert cells == 100 * 300
    assert not any(name == "extadmin_package_converged" for name, _ in m)  # over PER_PACKAGE_MAX: none per package
    assert len(m) < 1000
