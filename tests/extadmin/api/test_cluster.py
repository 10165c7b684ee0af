"""``GET /api/cluster/``: the same document as ``cluster_status --json``."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from extadmin.models import ExtensionPackage
from nodes.models import Node
from tests.processes import run_command

pytestmark = pytest.mark.django_db


def test_it_serves_the_cluster_status_document(
    api: APIClient, imported: Callable[..., ExtensionPackage], tmp_path: Path
) -> None:
    package = imported("Spread")
    assert run_command("sync_node", "--name", "node-2", "--storage", str(tmp_path / "node-2"))[0] == 0
    Node.objects.update(last_heartbeat=timezone.now())  # both agents alive
    response = api.get("/api/cluster/")
    assert response.status_code == 200
    code, out, _ = run_command("cluster_status", "--json")
    assert code == 0
    assert response.json() == json.loads(out)
    (extension,) = response.json()["extensions"]
    assert (extension["name"], extension["checksum"], extension["converged"]) == ("Spread", package.sha256, True)
    assert set(extension["nodes"]) == {"web", "node-2"}


def test_it_shows_an_empty_cluster(api: APIClient) -> None:
    assert api.get("/api/cluster/").json() == {
        "sync": {"paused": False, "paused_at": None, "paused_by": None, "paused_reason": "", "text": "Syncing runs"},
        "nodes": [], "extensions": [],
    }
