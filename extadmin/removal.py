"""The ordered removal: a package leaves the cluster in the reverse of the way it came in.

Order (mission, "Removal"):
  0. validate — the package exists and no other package depends on it
  1. undeploy — the package is marked removing: its entities stop being offered
  2. archive  — the zip's chunks and checksum are deleted from the database
  3. package  — the ``ExtensionPackage`` and its entities are deleted
  4. local    — ``extensions/<name>/`` (``.chk`` included) is deleted on this node
Then every other node is nudged to remove its copy.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from django.conf import settings
from django.db import transaction

from extadmin import faults
from extadmin.logs import logged_as
from extadmin.models import Archive, ArchiveChunk, ExtensionPackage, Operation
from extadmin.operations import Actor, OperationRecorder, operations_mark_interrupted
from extadmin.packaging import Conflict, Refusal, is_safe_name
from extadmin.selectors import package_dependents
from extadmin.storage import LockBusy, NodeStorage
from nodes.services import (
    node_get_or_register,
    node_name_check,
    nodes_nudge_on_commit,
)
from nodes.sync_states import sync_state_record_local_removal
from webhooks import events as webhook_events


def removal_check(*, name: str) -> ExtensionPackage:
    """Every check of a removal, without side effects."""
    # A name no package can have (a NUL: PostgreSQL refuses it in text) is not even looked up.
    package = ExtensionPackage.objects.filter(name=name).first() if is_safe_name(name) else None
    if package is None:
        raise Refusal("validate", f"no extension package named {name!r} is installed")
    _refuse_dependents(name)
    return package


def _refuse_dependents(name: str, *, step: str = "validate", meanwhile: str = "") -> None:
    dependents = package_dependents(name=name)
    if dependents:
        listed = ", ".join(f"{p.name}:{p.version}" for p in dependents)
        raise Conflict(step, f"{name} cannot be removed while these packages depend on it: {listed}{meanwhile}")


def _undeploy(package: ExtensionPackage) -> None:
    """Step 1, with the package's row locked and its dependents checked again in the same transaction.

    An import of a dependent checks its dependencies with their rows locked in its committing
    transaction, so whichever of the two commits second sees the other: a dependent that committed
    since step 0 refuses this removal here, and once this commits the package is no longer active,
    so such an import is refused. (On SQLite the IMMEDIATE transaction serialises the two instead.)
    """
    with transaction.atomic():
        locked = ExtensionPackage.objects.select_for_update().filter(pk=package.pk, sha256=package.sha256).first()
        if locked is None:
            raise Conflict("undeploy", f"{package.name} changed while it was being removed; reload and try again")
        meanwhile = " (imported while this removal ran); nothing was removed"
        _refuse_dependents(package.name, step="undeploy", meanwhile=meanwhile)
        ExtensionPackage.objects.filter(pk=package.pk).update(state=ExtensionPackage.State.REMOVING)


@logged_as(node="node_name", package="name")  # its lines name the node and package; the operation its id
def package_remove(
    *, name: str, actor: Actor | None = None, node_name: str | None = None, storage_root: Path | None = None
) -> Operation:
    """Remove ``name`` in the ordered steps (module docstring); raises ``Refusal`` naming the step.

    This node's folder lock of the package is taken before step 1 and held to the end, waiting at
    most ``EXTADMIN_LOCK_WAIT`` seconds: a removal never waits for ever behind a hung sync or
    import, and when it cannot have the lock nothing has changed yet.
    """
    actor = actor or Actor()
    node_name = node_name or settings.EXTADMIN_NODE
    node_name_check(name=node_name, setting="EXTADMIN_NODE")  # before step 1 marks the package
    storage = NodeStorage(storage_root or settings.EXTADMIN_STORAGE)
    package = removal_check(name=name)  # 0. validate
    faults.checkpoint("remove.after_validate")
    with _folder_lock(storage, name):
        operations_mark_interrupted(node=node_name)  # a removal killed half-way is not left "running"
        recorder = OperationRecorder.start(
            kind=Operation.Kind.REMOVE, package_name=name, actor=actor, node=node_name,
            version=package.version, sha256=package.sha256,
        )
        try:
            _run_steps(package, recorder, storage, node_name)
        except BaseException as exc:
            raise recorder.fail(exc) from exc
        return recorder.finish()


@contextmanager
def _folder_lock(storage: NodeStorage, name: str) -> Iterator[None]:
    with ExitStack() as held:
        try:
            held.enter_context(storage.lock(name, wait=settings.EXTADMIN_LOCK_WAIT))
        except LockBusy as busy:
            reason = f"{busy.held(settings.EXTADMIN_LOCK_WAIT)}; nothing was removed, try again"
            raise Conflict("lock", reason) from None
        yield


def _run_steps(package: ExtensionPackage, recorder: OperationRecorder, storage: NodeStorage, node_name: str) -> None:
    name = package.name
    with recorder.step(1, "undeploy"):
        _undeploy(package)
        faults.checkpoint("remove.after_undeploy")
    with transaction.atomic():
        with recorder.step(2, "archive"):
            ArchiveChunk.objects.filter(package=package).delete()
            Archive.objects.filter(package=package).delete()
            faults.checkpoint("remove.after_archive")
        with recorder.step(3, "package"):
            package.delete()  # entities go with it (cascade)
            node = node_get_or_register(name=node_name, storage=storage.root)
            sync_state_record_local_removal(node=node, package_name=name)
            faults.checkpoint("remove.after_package")
        nodes_nudge_on_commit(exclude=node_name)
        webhook_events.package_removed(package=package, node=node_name, by=recorder.operation.username)
    with recorder.step(4, "local"):  # under the folder lock taken before step 1
        storage.remove(name)
        storage.clean_leftovers_of(name)
