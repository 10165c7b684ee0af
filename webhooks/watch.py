"""Events the agents' rows reveal, found by comparing the cluster with what was last emitted.

The agents write only their own node's rows (``nodes/migrations/0004_node_privileges.py``), and a
node that goes silent writes nothing at all: so the webhooks worker looks, every
``EXTADMIN_WEBHOOK_SCAN_INTERVAL`` seconds, at the cluster as every door sees it
(``nodes.status.cluster_document``, the one rule of ``nodes.convergence``), and compares each
*fact* with the value it last recorded for it (``WebhookWatch``, one row per fact):

- ``package.converged`` — once per package and checksum, when every online node proved it;
- ``node.offline``      — when a node seen online is now offline;
- ``node.failed``       — when a node's cell of a package turns failed (again after it recovered).

- ``node.degraded``     — when an online node turns degraded (``nodes.convergence``: it has not
                          converged a package within ``EXTADMIN_DEGRADED_AFTER`` of its import).

A new event is one more ``Watch`` in ``WATCHES``: a function from the cluster document to its facts.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.db import transaction

from nodes.status import cluster_document
from webhooks.events import event_emit
from webhooks.models import WebhookWatch

Document = dict[str, Any]


class Fact(NamedTuple):
    value: str | None  # None: nothing to record now (keep what was last recorded)
    data: dict[str, Any]  # the event's data, should it fire


def changed(old: str | None, new: str) -> bool:
    return old != new


@dataclass(frozen=True)
class Watch:
    event: str
    facts: Callable[[Document], dict[str, Fact]]  # key → fact, for every subject it watches
    fires: Callable[[str | None, str], bool] = changed  # (last recorded value or None, value now)


def packages_converged(doc: Document) -> dict[str, Fact]:
    """Every package in the database: its checksum once converged (``None`` until then)."""
    return {
        e["name"]: Fact(e["checksum"] if e["converged"] else None, {
            "name": e["name"], "version": e["version"], "checksum": e["checksum"], "online": e["online"],
            "offline": e["offline"], "nodes": sorted(n for n, c in e["nodes"].items() if c["up_to_date"]),
        })
        for e in doc["extensions"] if e["state"] == "active"
    }


def nodes_liveness(doc: Document) -> dict[str, Fact]:
    return {n["name"]: Fact(n["state"], {"node": n["name"], "last_seen": n["last_seen"]}) for n in doc["nodes"]}


def went_offline(old: str | None, new: str) -> bool:
    return old == "online" and new == "offline"


def cells_failed(doc: Document) -> dict[str, Fact]:
    """Each (node, package) cell that is failed now; a cell that recovers drops out (and may fire again)."""
    return {
        f"{node}/{e['name']}": Fact("failed", {"node": node, "package": e["name"], "version": e["version"],
                                               "checksum": e["checksum"], "error": cell["error"]})
        for e in doc["extensions"] for node, cell in e["nodes"].items() if cell["state"] == "failed"
    }


def nodes_degraded(doc: Document) -> dict[str, Fact]:
    """Each node degraded now (``nodes.convergence``), with the sentence; one that recovers drops out."""
    return {
        n["name"]: Fact("degraded", {"node": n["name"], "reason": n["degraded_reason"]})
        for n in doc["nodes"] if n.get("degraded")
    }


WATCHES = (
    Watch("package.converged", packages_converged),
    Watch("node.offline", nodes_liveness, went_offline),
    Watch("node.failed", cells_failed),
    Watch("node.degraded", nodes_degraded),
)


class Change(NamedTuple):
    key: str
    value: str
    event: str | None  # None: recorded without an event
    data: dict[str, Any]


def _changes(doc: Document, recorded: dict[str, str]) -> tuple[list[Change], set[str]]:
    """What differs from the recorded values, and the keys that still exist."""
    found: list[Change] = []
    keys: set[str] = set()
    for watch in WATCHES:
        for subject, fact in watch.facts(doc).items():
            key = f"{watch.event}:{subject}"
            keys.add(key)
            old = recorded.get(key)
            if fact.value is None or old == fact.value:
                continue
            fires = watch.fires(old, fact.value)
            found.append(Change(key, fact.value, watch.event if fires else None, fact.data))
    return found, keys


def watch_scan() -> list[str]:
    """Record what changed and emit its events, in one transaction; the events emitted.

    Read first without a write lock: most scans find nothing, and then write nothing (on SQLite a
    write transaction every second would queue imports behind it).
    """
    doc = cluster_document()
    recorded = dict(WebhookWatch.objects.values_list("key", "value"))
    changes, keys = _changes(doc, recorded)
    if not changes and recorded.keys() <= keys:
        return []
    with transaction.atomic():
        # Again under the rows' lock: of two workers scanning at once, one emits each change of a
        # recorded fact (a fact seen for the first time has no row to lock: run one worker).
        recorded = dict(WebhookWatch.objects.select_for_update().values_list("key", "value"))
        changes, keys = _changes(doc, recorded)
        for change in changes:
            WebhookWatch.objects.update_or_create(key=change.key, defaults={"value": change.value})
            if change.event:
                event_emit(event=change.event, data=change.data)
        WebhookWatch.objects.filter(key__in=set(recorded) - keys).delete()
    return [c.event for c in changes if c.event]
