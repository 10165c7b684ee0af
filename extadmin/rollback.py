"""Rollback: a retained version becomes the package's current version again, in the ordered import.

Order:
  0. choose    — the retained version (``--to VERSION``, or the newest retained one that is not
                 quarantined); refused when there is none, when it is quarantined, or when it is
                 already the current version
  1. fetch     — its zip streamed out of the database into a temporary file, its checksum proved
  2. import    — the ordered import (``extadmin.importing``) of those bytes and their stored
                 signature, as an operation of kind ``rollback``: every check of an import (an
                 installed dependent that needs a higher version refuses it, naming it) except the
                 "downgrade refused" one. Step 4 re-points the retained chunks back to the package
                 and keeps the version rolled back from as a retained one.
Then every node converges to the older bytes exactly, as to any new version.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from extadmin.documents import import_results_document
from extadmin.importing import ImportItem, SignedFile, package_import
from extadmin.models import ExtensionPackage, RetainedVersion
from extadmin.operations import Actor
from extadmin.packaging import Conflict, Refusal
from extadmin.versions import package_get_for_version_change, quarantine_reason, retained_copy_to


def rollback_target(
    *, package: ExtensionPackage, to: str | None, avoid: frozenset[str] = frozenset()
) -> RetainedVersion:
    """0. The retained version a rollback goes to. ``avoid``: checksums not to choose (being quarantined)."""
    retained = list(package.retained_versions.order_by("-imported_at", "-id"))
    name = package.name
    if to is not None:
        if to == package.version and not any(r.version == to for r in retained):
            raise Conflict("validate", f"{name}:{to} is already the current version")
        chosen = next((r for r in retained if r.version == to), None)
        if chosen is None:
            have = ", ".join(r.version for r in retained) or "none"
            raise Refusal("validate", f"{name}:{to} is not a retained version (retained: {have})")
        reason = quarantine_reason(chosen.sha256)
        if reason is not None or chosen.sha256 in avoid:
            raise Conflict("validate", f"{name}:{to} is quarantined: {reason or 'being quarantined'}")
        return chosen
    good = [r for r in retained if r.sha256 not in avoid and quarantine_reason(r.sha256) is None]
    if not good:
        why = "every retained version is quarantined" if retained else "no earlier version is retained"
        raise Refusal("validate", f"{name} has no version to roll back to: {why}")
    return good[0]


def package_rollback(
    *, name: str, to: str | None = None, actor: Actor | None = None, node_name: str | None = None,
    storage_root: Path | None = None, avoid: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Roll ``name`` back to the retained version ``to`` (default: the newest good one); see the module docstring.

    Returns the import's document (``kind``: ``rollback``, ``previous_version``); raises ``Refusal``.
    """
    package = package_get_for_version_change(name=name)
    target = rollback_target(package=package, to=to, avoid=avoid)  # 0. choose
    with tempfile.TemporaryDirectory(prefix="extadmin-rollback-") as tmp:
        path = Path(tmp) / f"{name}-{target.version}.zip"
        with path.open("wb") as out:  # 1. fetch
            retained_copy_to(version_id=target.pk, out=out, expected_sha256=target.sha256)
        signature: Path | None = None
        if target.signature:
            signature = Path(tmp) / f"{path.name}.sig"
            signature.write_text(target.signature)
        item = ImportItem(
            path=path, sha256=target.sha256, rollback=True, signed=SignedFile(path=path, signature=signature),
        )
        results = package_import(items=[item], actor=actor, node_name=node_name, storage_root=storage_root)  # 2.
    doc = import_results_document(results)
    doc["previous_version"] = package.version
    return doc
