"""The cluster document: every node's liveness and every package × node state, as proven by the nodes.

One shape for the dashboard, ``cluster_status`` and ``/api/cluster/``::

    {"nodes": [{"name", "online", "last_seen"}],
     "extensions": [{"name", "version", "checksum", "converged",
                     "nodes": {NODE: {"state", "version", "checksum", "error"}}}]}

Rules: a package is ``converged`` only when every *online* node proved the desired checksum on disk,
and never when no node is online. A node without a state row for a package is ``pending``; a node
that proved an older checksum is ``pending`` too (it has not synced the new one yet). An offline
node's cell is ``unknown`` — what it last reported is kept in version/checksum/error, but a node
that stopped reporting is never shown as installed. Three queries, whatever the cluster's size.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from extadmin.models import ExtensionPackage
from nodes.liveness import is_online
from nodes.models import Node, SyncState

UNKNOWN = "unknown"


def cluster_document(*, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    nodes = list(Node.objects.order_by("name").values_list("id", "name", "last_heartbeat"))
    packages = list(
        ExtensionPackage.objects.filter(archive__isnull=False).order_by("name").values_list("name", "version", "sha256")
    )
    states = {
        (node_id, package_name): (state, version, sha256, error)
        for node_id, package_name, state, version, sha256, error in SyncState.objects.values_list(
            "node_id", "package_name", "state", "installed_version", "installed_sha256", "error"
        )
    }
    online = {node_id: is_online(seen, now) for node_id, _, seen in nodes}
    return {
        "nodes": [
            {"name": name, "online": online[node_id], "last_seen": seen.isoformat() if seen else None}
            for node_id, name, seen in nodes
        ],
        "extensions": [
            _extension(name, version, sha256, nodes=nodes, online=online, states=states)
            for name, version, sha256 in packages
        ],
    }


def _extension(
    name: str, version: str, sha256: str, *, nodes: list[tuple[int, str, datetime | None]],
    online: dict[int, bool], states: dict[tuple[int, str], tuple[str, str, str, str]],
) -> dict[str, Any]:
    cells: dict[str, dict[str, str]] = {}
    proven_online = []
    for node_id, node_name, _ in nodes:
        state, have_version, have_sha256, error = states.get((node_id, name), (SyncState.State.PENDING, "", "", ""))
        proved = state == SyncState.State.INSTALLED and have_sha256 == sha256
        if state == SyncState.State.INSTALLED and not proved:
            state = SyncState.State.PENDING  # it holds an older version and has not synced this one yet
        if not online[node_id]:
            state = UNKNOWN
        else:
            proven_online.append(proved)
        cells[node_name] = {"state": str(state), "version": have_version, "checksum": have_sha256, "error": error}
    return {
        "name": name, "version": version, "checksum": sha256,
        "converged": bool(proven_online) and all(proven_online), "nodes": cells,
    }


def render_table(document: dict[str, Any]) -> str:
    """The document as a plain-text table for a terminal."""
    nodes = document["nodes"]
    lines = ["nodes:"] + [
        f"  {n['name']:<24} {'online ' if n['online'] else 'OFFLINE'}  last seen {n['last_seen'] or 'never'}"
        for n in nodes
    ]
    if not nodes:
        lines.append("  (no node has registered)")
    names = [n["name"] for n in nodes]
    width = max([10, *(len(n) for n in names)]) + 2
    lines.append("")
    lines.append(f"{'EXTENSION':<32} {'VERSION':<16} {'CONVERGED':<10}" + "".join(f"{n:<{width}}" for n in names))
    for e in document["extensions"]:
        cells = "".join(f"{e['nodes'][n]['state']:<{width}}" for n in names)
        lines.append(f"{e['name']:<32} {e['version']:<16} {'yes' if e['converged'] else 'no':<10}" + cells)
        lines += [
            f"    {n}: {cell['error']}" for n, cell in e["nodes"].items() if cell["error"]
        ]
    if not document["extensions"]:
        lines.append("(no extension packages)")
    return "\n".join(lines)
