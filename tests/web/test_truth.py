"""One truth about every node: the dashboard, the package and node pages, ``cluster_status --json``,
``/api/cluster/`` and ``/api/extensions/<name>/`` say the same words (issue 10, items 1–5).

Nodes sync for real (``sync_node``, the CLI door); liveness is moved by writing heartbeats.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from extadmin.models import ExtensionPackage
from nodes.models import Node, SyncState
from nodes.presenters import clock, moment_text
from nodes.services import node_heartbeat
from tests.packages import build_package
from tests.processes import run_command

pytestmark = pytest.mark.django_db

Imported = Callable[..., ExtensionPackage]


@pytest.fixture
def api(operator: User) -> APIClient:
    c = APIClient()
    c.force_authenticate(operator)
    return c


def sync_node(name: str, tmp_path: Path) -> None:
    code, out, err = run_command("sync_node", "--name", name, "--storage", str(tmp_path / "storage" / name))
    assert code == 0, out + err


def seen(name: str, *, ago: timedelta = timedelta(0)) -> None:
    Node.objects.filter(name=name).update(last_heartbeat=timezone.now() - ago)


def dashboard_cells(client: Client, package: str) -> dict[str, str]:
    html = client.get("/").content.decode()
    found = re.findall(rf'data-package="{package}" data-node="([^"]+)" data-state="([^"]+)"', html)
    return dict(found)


def dashboard_count(client: Client, package: str) -> str:
    html = client.get("/").content.decode()
    match = re.search(rf'<td class="count" data-package="{package}">([^<]*)</td>', html)
    assert match is not None
    return match.group(1)


def every_door(client: Client, api: APIClient, package: str) -> dict[str, Any]:
    """Each door's cells for ``package`` (node → state) and its converged, online and offline."""
    code, out, _ = run_command("cluster_status", "--json")
    assert code == 0
    doors: dict[str, Any] = {}
    for door, doc in {"cli": json.loads(out), "api-cluster": api.get("/api/cluster/").json()}.items():
        [ext] = [e for e in doc["extensions"] if e["name"] == package]
        doors[door] = ({n: c["state"] for n, c in ext["nodes"].items()}, ext["converged"], ext["online"],
                       ext["offline"])
    detail = api.get(f"/api/extensions/{package}/").json()
    doors["api-extension"] = ({n["node"]: n["state"] for n in detail["nodes"]}, detail["converged"],
                              detail["online"], detail["offline"])
    return doors


def test_it_says_the_same_words_everywhere_with_one_node_offline(
    operator_client: Client, api: APIClient, imported: Imported, tmp_path: Path
) -> None:
    """Item 1: converged with 3 online and 1 offline; the offline node is offline, never installed."""
    package = imported("Everywhere")
    for name in ("n1", "n2", "n3"):
        sync_node(name, tmp_path)
    seen("n3", ago=timedelta(hours=1))  # n3 proved it, then stopped

    doors = every_door(operator_client, api, "Everywhere")

    cells = {"web": "installed", "n1": "installed", "n2": "installed", "n3": "offline"}
    assert doors == {door: (cells, True, 3, 1) for door in ("cli", "api-cluster", "api-extension")}
    assert dashboard_cells(operator_client, "Everywhere") == cells
    assert dashboard_count(operator_client, "Everywhere") == "3/3 online, 1 offline"
    assert "<strong>1/1</strong> packages converged" in operator_client.get("/").content.decode()
    detail = {n["node"]: n for n in api.get("/api/extensions/Everywhere/").json()["nodes"]}
    assert (detail["n3"]["up_to_date"], detail["n3"]["reported"]) == (False, "installed")
    assert detail["n3"]["installed_checksum"] == package.sha256  # what it last said, kept apart
    page = operator_client.get(reverse("package", args=["Everywhere"])).content.decode()
    assert '<tr data-node="n3" data-state="offline">' in page and "3/3 online, 1 offline · converged" in page


def test_it_takes_a_sync_pass_and_an_import_as_proof_of_life(
    operator_client: Client, api: APIClient, imported: Imported, tmp_path: Path
) -> None:
    """Item 2: right after ``sync_node --name n1`` proved every package, n1 is online and converged."""
    imported("Alive")
    imported("Kicking")
    web = Node.objects.get(name="web")
    assert web.last_heartbeat is not None  # the import on web was its proof of life

    sync_node("n1", tmp_path)

    code, out, _ = run_command("cluster_status", "--json")
    assert code == 0
    doc = json.loads(out)
    assert {n["name"]: (n["online"], n["state"]) for n in doc["nodes"]} == {
        "n1": (True, "online"), "web": (True, "online"),
    }
    assert [n["last_seen"] for n in doc["nodes"]] != [None, None]
    for ext in doc["extensions"]:
        assert (ext["converged"], ext["online"], ext["offline"]) == (True, 2, 0)
        assert {c["state"] for c in ext["nodes"].values()} == {"installed"}
    assert every_door(operator_client, api, "Alive")["api-extension"] == (
        {"web": "installed", "n1": "installed"}, True, 2, 0
    )


def test_it_counts_a_heartbeat_from_the_future_as_none(
    operator_client: Client, api: APIClient, imported: Imported, tmp_path: Path
) -> None:
    """Item 4: a heartbeat written ten years ahead keeps no node online."""
    imported("Future")
    sync_node("n1", tmp_path)
    Node.objects.filter(name="n1").update(last_heartbeat=timezone.now() + timedelta(days=3650))

    doors = every_door(operator_client, api, "Future")

    cells = {"web": "installed", "n1": "offline"}
    assert doors == {door: (cells, True, 1, 1) for door in ("cli", "api-cluster", "api-extension")}
    assert dashboard_cells(operator_client, "Future") == cells
    node_page = operator_client.get(reverse("node", args=["n1"])).content.decode()
    assert 'data-node-state="offline"' in node_page
    nodes_page = operator_client.get(reverse("nodes")).content.decode()
    assert '<tr data-node="n1" data-state="offline">' in nodes_page

    assert node_heartbeat(name="n1")  # the agent's next heartbeat, by the database's clock
    assert every_door(operator_client, api, "Future")["cli"] == ({"web": "installed", "n1": "installed"}, True, 2, 0)


def test_it_shows_one_last_seen_beside_the_last_reported_state(
    viewer_client: Client, imported: Imported
) -> None:
    """Item 3: never "Last seen never" beside "offline (last reported installed)"."""
    imported("Reported")
    seen("web", ago=timedelta(hours=2))
    last = Node.objects.get(name="web").last_heartbeat

    html = viewer_client.get(reverse("node", args=["web"])).content.decode()

    assert "never" not in html
    assert f"<dd data-last-seen>{moment_text(last)}</dd>" in html
    assert "offline (last reported installed)" in html
    assert f"offline since {clock(last)}" in html and clock(last).endswith(" UTC")


def test_it_claims_nothing_for_a_node_that_was_never_seen(viewer_client: Client, imported: Imported) -> None:
    imported("Silent")
    ghost = Node.objects.create(name="ghost")
    SyncState.objects.create(node=ghost, package_name="Silent", state="installed", changed_at=timezone.now())

    html = viewer_client.get(reverse("node", args=["ghost"])).content.decode()

    assert "<dd data-last-seen>never</dd>" in html
    assert "agent has never reported" in html
    assert "last reported" not in html


def _converged_in(client: Client, package: str) -> tuple[str, str]:
    html = client.get("/").content.decode()
    row = html[html.index(f'<td class="count" data-package="{package}">'):]
    # "Since import" is a <time> the browser counts on; "Converged in" plain text.
    since, took = re.findall(r'<td class="muted">(?:<time[^>]*>)?([^<]*)(?:</time>)?</td>', row)[:2]
    return since, took


@pytest.mark.parametrize("door", ["form", "api", "cli"])
def test_it_keeps_the_import_time_when_the_same_bytes_are_imported_again(
    operator_client: Client, api: APIClient, node_storage: Any, pkgdir: Path, tmp_path: Path, door: str
) -> None:
    """Item 5: re-uploading identical bytes neither shows "Converged in 3 ms" nor resets "Since import"."""
    path = build_package(pkgdir, "Again", "1.0.0")
    code, out, err = run_command("import_extension", str(path))
    assert code == 0, out + err
    sync_node("n1", tmp_path)
    hour_ago = timezone.now() - timedelta(hours=1)
    ExtensionPackage.objects.filter(name="Again").update(imported_at=hour_ago)
    SyncState.objects.filter(package_name="Again").update(
        started_at=hour_ago + timedelta(seconds=1), finished_at=hour_ago + timedelta(seconds=42)
    )
    seen("web")
    seen("n1")
    assert _converged_in(operator_client, "Again") == ("1 h", "42 s")

    if door == "form":
        upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/zip")
        response = operator_client.post(reverse("package-upload"), {"file": [upload], "action": "import"})
        assert response.status_code == 302
    elif door == "api":
        with path.open("rb") as f:
            assert api.post("/api/extensions/", {"file": [f]}, format="multipart").status_code == 201
    else:
        assert run_command("import_extension", str(path))[0] == 0

    assert ExtensionPackage.objects.get(name="Again").imported_at == hour_ago
    assert _converged_in(operator_client, "Again") == ("1 h", "42 s")
