"""Quarantine: a version's checksum is never installed by any node again, and never re-imported.

Order:
  0. validate — the package is installed, the version is its current or a retained one, a reason
                is given; with ``rollback``, a good (not quarantined) retained version exists to go
                back to — all before anything is written
  1. record   — the checksum(s) of that version, the reason, who and when, and the audited
                operation (kind ``quarantine``), in one transaction; every node is nudged after
                commit. An agent whose desired package has a quarantined checksum neither
                installs nor removes it, and a node that holds those bytes says so ("holds
                quarantined 2.0.0", ``nodes.convergence.quarantine_words``)
  2. rollback — with ``rollback``, when the current version is the one quarantined: the package
                rolls back (``extadmin.rollback``) to the last good retained version
An upload of the same bytes is refused at the import's checksum step, 409 ``quarantined: <reason>``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from extadmin.models import ExtensionPackage, Operation, Quarantine
from extadmin.operations import Actor, OperationRecorder
from extadmin.packaging import Conflict, Refusal, Unknown
from extadmin.packaging.errors import shown
from extadmin.rollback import package_rollback, rollback_target
from extadmin.versions import package_get_for_version_change, quarantine_reason
from nodes.services import nodes_nudge_on_commit
from rollouts.engine import rollouts_halt_quarantined

MAX_REASON = 1000


def quarantine_check(
    *, name: str, version: str, reason: str, rollback: bool = False
) -> tuple[ExtensionPackage, list[str]]:
    """0. Every check, no side effect: the package and the checksums of ``version`` to quarantine."""
    package = package_get_for_version_change(name=name)
    reason = reason.strip()
    if not reason:
        raise Refusal("validate", "a reason is required: say why this version must never be installed again")
    if len(reason) > MAX_REASON:
        raise Refusal("validate", f"the reason is longer than {MAX_REASON} characters")
    checksums = [package.sha256] if package.version == version else []
    checksums += list(package.retained_versions.filter(version=version).values_list("sha256", flat=True))
    if not checksums:
        have = ", ".join([package.version, *package.retained_versions.values_list("version", flat=True)])
        what = f"{name}:{shown(version, 64)} is not a version of {name} kept here (versions: {have})"
        raise Unknown("validate", what)
    if not rollback and all(quarantine_reason(sha) is not None for sha in checksums):
        raise Conflict("validate", f"{name}:{version} is already quarantined: {quarantine_reason(checksums[0])}")
    if rollback and package.sha256 in checksums:
        rollback_target(package=package, to=None, avoid=frozenset(checksums))
    return package, checksums


def package_quarantine(
    *, name: str, version: str, reason: str, actor: Actor | None = None, rollback: bool = False,
    node_name: str | None = None, storage_root: Path | None = None,
) -> dict[str, Any]:
    """Quarantine ``name``:``version`` (see the module docstring); raises ``Refusal`` naming the step."""
    actor = actor or Actor()
    package, checksums = quarantine_check(name=name, version=version, reason=reason, rollback=rollback)  # 0.
    reason = reason.strip()
    operation = _record(package=package, version=version, checksums=checksums, reason=reason, actor=actor)  # 1.
    doc: dict[str, Any] = {
        "name": name, "version": version, "checksums": checksums, "reason": reason, "quarantined": True,
        "operation": operation.pk, "rolled_back_to": None,
    }
    if rollback and package.sha256 in checksums:  # 2.
        try:
            rolled = package_rollback(
                name=name, actor=actor, node_name=node_name, storage_root=storage_root, avoid=frozenset(checksums)
            )
        except Refusal as exc:
            why = f"{name}:{version} is quarantined, but the rollback was refused: {exc.reason}"
            raise type(exc)(exc.step, why) from exc
        doc["rolled_back_to"] = rolled["version"]
        doc["rollback"] = rolled
    return doc


def _record(
    *, package: ExtensionPackage, version: str, checksums: list[str], reason: str, actor: Actor
) -> Operation:
    user = actor.user if getattr(actor.user, "pk", None) else None
    with transaction.atomic():
        recorder = OperationRecorder.start(
            kind=Operation.Kind.QUARANTINE, package_name=package.name, actor=actor, node=settings.EXTADMIN_NODE,
            version=version, sha256=checksums[0], warnings=f"reason: {reason}",
        )
        with recorder.step(1, "record"):
            for sha in checksums:
                if quarantine_reason(sha) is None:
                    try:
                        with transaction.atomic():
                            Quarantine.objects.create(
                                package_name=package.name, version=version, sha256=sha, reason=reason, user=user,
                                username=actor.username,
                            )
                    except IntegrityError:
                        pass  # quarantined by another operator at the same moment: it is, either way
            rollouts_halt_quarantined(package_name=package.name, version=version, checksums=checksums, reason=reason)
        operation = recorder.finish()
        nodes_nudge_on_commit()
    return operation
