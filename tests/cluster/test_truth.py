"""Done when (issue 10): with 3 agents running and a fourth node stopped, the dashboard,
``cluster_status --json``, ``/api/cluster/`` and ``/api/extensions/<name>/`` agree word for word on
every cell and on ``converged``; right after ``sync_node`` the stopped node is online and proven.
"""
from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from nodes.models import Node
from tests.cluster.conftest import Cluster
from tests.nodes.conftest import Importer
from tests.processes import child_env, manage, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

# Slower heartbeats than the other cluster tests: on a loaded machine a heartbeat one second late
# must not flip a live agent offline between two doors' reads.
HEARTBEAT = "2"


def _cli_document() -> dict[str, Any]:
    done = manage("cluster_status", "--json", env=child_env(EXTADMIN_HEARTBEAT_INTERVAL=HEARTBEAT))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _from_document(doc: dict[str, Any]) -> dict[str, tuple[dict[str, str], bool]]:
    return {e["name"]: ({n: c["state"] for n, c in e["nodes"].items()}, e["converged"]) for e in doc["extensions"]}


def _from_dashboard(client: Client) -> dict[str, tuple[dict[str, str], bool]]:
    html = client.get("/").content.decode()
    cells: dict[str, dict[str, str]] = {}
    for package, node, state in re.findall(r'data-package="([^"]+)" data-node="([^"]+)" data-state="([^"]+)"', html):
        cells.setdefault(package, {})[node] = state
    rows = re.findall(r'<tr class="(done|open)"[^>]*>\s*<th class="pkg"[^>]*><a href="/extensions/([^/]+)/"', html)
    return {name: (cells[name], kind == "done") for kind, name in rows}


def _from_extensions(api: APIClient, names: list[str]) -> dict[str, tuple[dict[str, str], bool]]:
    out = {}
    for name in names:
        body = api.get(f"/api/extensions/{name}/").json()
        out[name] = ({n["node"]: n["state"] for n in body["nodes"]}, body["converged"])
    return out


def _doors(client: Client, api: APIClient) -> dict[str, Any]:
    cli = _from_document(_cli_document())
    return {
        "cli": cli,
        "api-cluster": _from_document(api.get("/api/cluster/").json()),
        "api-extension": _from_extensions(api, sorted(cli)),
        "dashboard": _from_dashboard(client),
    }


def _agree(client: Client, api: APIClient, expected: dict[str, tuple[dict[str, str], bool]]) -> bool:
    return all(answer == expected for answer in _doors(client, api).values())


def test_it_says_the_same_words_through_every_door_with_a_node_stopped(
    cluster: Cluster, import_package: Importer, settings  # type: ignore[no-untyped-def]
) -> None:
    settings.EXTADMIN_HEARTBEAT_INTERVAL = float(HEARTBEAT)
    user = User.objects.create_superuser("truth", "truth@x.invalid", "pw")
    client, api = Client(), APIClient()
    client.force_login(user)
    api.force_authenticate(user)
    names = cluster.start(4, EXTADMIN_HEARTBEAT_INTERVAL=HEARTBEAT)
    alpha, beta = import_package("Alpha"), import_package("Beta", depends_on="Alpha:1.0.0")
    cluster.wait_converged(names, [alpha, beta], timeout=60)
    stopped = names[3]
    cluster.agents[stopped].stop()
    late = import_package("Late")  # while the fourth node is stopped: it does not have it
    cluster.wait_converged(names[:3], [late], timeout=60)
    Node.objects.filter(name="web").delete()  # this process is no node of the cluster: 3 agents + 1 stopped

    cells = {n: "installed" for n in names[:3]} | {stopped: "offline"}
    expected = {p: (cells, True) for p in ("Alpha", "Beta", "Late")}
    wait_for(lambda: _agree(client, api, expected), timeout=30, what=f"every door to say {stopped} is offline")
    [late_doc] = [e for e in _cli_document()["extensions"] if e["name"] == "Late"]
    assert (late_doc["converged"], late_doc["online"], late_doc["offline"]) == (True, 3, 1)
    assert 'data-package="Late">3/3 online, 1 offline</td>' in client.get("/").content.decode()

    synced = manage("sync_node", "--name", stopped, "--storage", str(cluster.storage(stopped).root),
                    env=child_env(EXTADMIN_HEARTBEAT_INTERVAL=HEARTBEAT))
    assert synced.returncode == 0, synced.stdout + synced.stderr
    doc = _cli_document()  # right after: online, and every package proven on its disk
    assert {n["name"]: n["state"] for n in doc["nodes"]}[stopped] == "online"
    assert {e["name"]: (e["nodes"][stopped]["state"], e["converged"]) for e in doc["extensions"]} == {
        "Alpha": ("installed", True), "Beta": ("installed", True), "Late": ("installed", True),
    }
    assert cluster.holds(stopped, late)
