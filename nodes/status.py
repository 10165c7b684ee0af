"""The cluster as documents: ``cluster_status --json``, ``/api/cluster/`` and the ``nodes`` of
``/api/extensions/<name>/``, with the words and the rule of ``nodes.convergence``::

    {"nodes": [{"name", "online", "state", "last_seen", "degraded", "degraded_reason"}],
     "extensions": [{"name", "version", "checksum", "state", "converged", "online", "offline",
                     "nodes": {NODE: {"state", "reported", "up_to_date", "version", "checksum", "error",
                                      "retry", "failures", "next_retry_at", "degraded"}}}]}

``state`` of a node is ``online`` or ``offline``; of a cell, the dashboard's word. ``version`` and
``checksum`` are what the node last reported; for an offline node ``reported`` says what its cell
would say were it online, and ``up_to_date`` is always false. A node is ``degraded`` (with the
sentence saying why) by ``nodes.convergence.degraded``. ``retry`` says when a failed checksum is tried
again ("retry 3/5 at 14:05:10 UTC") or that the node gave up on it ("gave up after 5 retries"), ``''``
otherwise; ``failures`` counts its failed tries in a row and ``next_retry_at`` is the retry's time
(``nodes.retries``). Four queries, whatever the size.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from extadmin.models import ExtensionPackage
from nodes.convergence import Verdict, tally, verdict
from nodes.presenters import degraded_cells, degraded_nodes, retry_words
from nodes.selectors import ClusterSnapshot, NodeRow, StateRow, cluster_snapshot, node_rows, package_state_rows
from nodes.tampering import package_tampering


def _cell(v: Verdict, version: str, checksum: str, error: str, failures: int = 0,
          next_retry_at: datetime | None = None) -> dict[str, Any]:
    return {
        "state": v.state, "reported": v.reported, "up_to_date": v.converged,
        "version": version, "checksum": checksum, "error": error,
        "retry": retry_words(state=v.state, failures=failures, next_retry_at=next_retry_at),
        "failures": failures, "next_retry_at": next_retry_at.isoformat() if next_retry_at else None,
    }


def _node(row: NodeRow) -> dict[str, Any]:
    _, name, seen, online = row
    return {"name": name, "online": bool(online), "state": "online" if online else "offline",
            "last_seen": seen.isoformat() if seen else None}


def _extension(snapshot: ClusterSnapshot, name: str, version: str, sha256: str, state: str | None) -> dict[str, Any]:
    held = snapshot.states.get(name, {})
    verdicts, cells = [], {}
    for node_id, node_name, _, online in snapshot.nodes:
        values = held.get(node_id)
        reported = values[2] if values else None
        v = verdict(bool(online), state, reported, values is not None and values[4] == sha256)
        verdicts.append(v)
        cells[node_name] = _cell(v, *values[3:6], *values[7:9]) if values else _cell(v, "", "", "")
    t = tally(verdicts)
    return {
        "name": name, "version": version, "checksum": sha256, "state": state or "removed",
        "converged": t.converged, "online": t.online, "offline": t.offline, "nodes": cells,
    }


def cluster_document(snapshot: ClusterSnapshot | None = None) -> dict[str, Any]:
    """Every node and every package (and every package removed that a node still holds)."""
    snapshot = snapshot or cluster_snapshot()
    extensions = [_extension(snapshot, name, version, sha256, state)
                  for name, version, sha256, state, _, _ in snapshot.packages]
    extensions += [_extension(snapshot, gone, "", "", None) for gone in snapshot.removed_still_held]
    cells = degraded_cells(snapshot)
    reasons = degraded_nodes(cells)
    ids = {n[1]: n[0] for n in snapshot.nodes}
    for e in extensions:
        for node_name, cell in e["nodes"].items():
            cell["degraded"] = (e["name"], ids[node_name]) in cells
    nodes = [{**_node(n), "degraded": n[0] in reasons, "degraded_reason": reasons.get(n[0], "")}
             for n in snapshot.nodes]
    return {"nodes": nodes, "extensions": extensions}


def _node_state(row: NodeRow, v: Verdict, s: StateRow | None) -> dict[str, Any]:
    seen = row[2].isoformat() if row[2] else None
    return {
        **_node(row), "node": row[1], "last_heartbeat": seen,
        **(_cell(v, s.installed_version, s.installed_sha256, s.error, s.failures, s.next_retry_at) if s
           else _cell(v, "", "", "")),
        "installed_version": s.installed_version if s else "",
        "installed_checksum": s.installed_sha256 if s else "",
        "changed_at": s.changed_at.isoformat() if s and s.changed_at else None,
        "duration_ms": s.duration_ms if s else None,
    }


def package_nodes_document(*, package: ExtensionPackage) -> dict[str, Any]:
    """One package on every node: the same cells as ``cluster_document``, one list entry per node."""
    states = package_state_rows(name=package.name)
    nodes = node_rows()
    late = degraded_cells(cluster_snapshot())  # the cells' "degraded", as in cluster_document
    entries, verdicts = [], []
    for row in nodes:
        s = states.get(row[0])
        v = verdict(bool(row[3]), package.state, s.state if s else None,
                    s is not None and s.installed_sha256 == package.sha256)
        verdicts.append(v)
        entries.append({**_node_state(row, v, s), "degraded": (package.name, row[0]) in late})
    t = tally(verdicts)
    tampered = [t.as_dict() for t in package_tampering(nodes=nodes, states=states)]
    return {"converged": t.converged, "online": t.online, "offline": t.offline, "nodes": entries, "tampered": tampered}


def render_table(document: dict[str, Any]) -> str:
    """The document as a plain-text table for a terminal."""
    nodes = document["nodes"]
    lines = ["nodes:"] + [
        f"  {n['name']:<24} {'online ' if n['online'] else 'OFFLINE'}  last seen {n['last_seen'] or 'never'}"
        + (f"\n    DEGRADED: {n['degraded_reason']}" if n.get("degraded") else "")
        for n in nodes
    ]
    if not nodes:
        lines.append("  (no node has registered)")
    names = [n["name"] for n in nodes]
    width = max([10, *(len(n) for n in names)]) + 2
    lines.append("")
    lines.append(f"{'EXTENSION':<32} {'VERSION':<16} {'CONVERGED':<18}" + "".join(f"{n:<{width}}" for n in names))
    for e in document["extensions"]:
        cells = "".join(f"{e['nodes'][n]['state']:<{width}}" for n in names)
        converged = f"{'yes' if e['converged'] else 'no'} ({e['online']} on, {e['offline']} off)"
        lines.append(f"{e['name']:<32} {e['version']:<16} {converged:<18}" + cells)
        lines += [
            f"    {n}: {cell['error']}" + (f" ({cell['retry']})" if cell.get("retry") else "")
            for n, cell in e["nodes"].items() if cell["error"]
        ]
    if not document["extensions"]:
        lines.append("(no extension packages)")
    return "\n".join(lines)
