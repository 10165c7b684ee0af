"""Snapshots of everything extadmin writes: rows in every table, files under a storage root.

A refusal or a backed-out import must leave both exactly as they were; these make "nothing
written" a comparison of two snapshots instead of a list of things someone remembered to check.
"""
from __future__ import annotations

from django.apps import apps

from extadmin.models import Archive, ArchiveChunk, Entity, ExtensionPackage, Operation
from extadmin.storage import NodeStorage
from nodes.models import SyncState

# The audit trail records a refused or failed attempt on purpose ("the operator sees which step
# failed and why"): these are the only rows a refusal may add.
AUDIT = ("extadmin.Operation", "extadmin.OperationStep")


def rows() -> dict[str, list[tuple]]:
    """Every row of every extadmin and nodes table, as tuples of values (minus the audit trail)."""
    out: dict[str, list[tuple]] = {}
    for app in ("extadmin", "nodes"):
        for model in apps.get_app_config(app).get_models():
            if model._meta.label in AUDIT:
                continue
            fields = [f.attname for f in model._meta.concrete_fields]
            out[model._meta.label] = sorted(
                tuple(str(v) for v in r) for r in model.objects.values_list(*fields)
            )
    return out


def audit_outcomes() -> list[str]:
    return list(Operation.objects.values_list("outcome", flat=True))


def package_traces(name: str) -> dict[str, int]:
    """Rows anywhere that mention package ``name`` (zero everywhere means: never half-visible)."""
    return {
        "package": ExtensionPackage.objects.filter(name=name).count(),
        "entities": Entity.objects.filter(package__name=name).count(),
        "chunks": ArchiveChunk.objects.filter(package__name=name).count(),
        "archive": Archive.objects.filter(package__name=name).count(),
        "sync_states": SyncState.objects.filter(package_name=name).count(),
    }


def folder_matches_archive(storage: NodeStorage, package: ExtensionPackage) -> str | None:
    """None when ``extensions/<name>/`` is exactly the archived zip and its ``.chk`` is the sha256."""
    chk = storage.read_chk(package.name)
    if chk != package.sha256:
        return f"{package.name}.chk is {chk!r}, the database says {package.sha256}"
    return storage.verify(package.name, package.archive.manifest, contents=True)
