"""Entity collisions: two packages may not declare the same entity (type and name), as the platform refuses.

Checked at validate (step 0) against the installed packages and among the packages imported
together, and again at step 3 ``persist`` inside the committing transaction: another import may
have committed the same entity while this one unzipped. A package's own entities never collide
with themselves, so an upgrade or a re-import keeps them.

A package may declare up to ``EXTADMIN_MAX_ENTITIES`` (10,000 by default): the lookup goes in
batches on the ``Entity(type, name)`` index, a few queries whatever the number, never one per entity.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable
from itertools import islice

from django.db import connection

from extadmin.models import Entity
from extadmin.packaging import Conflict, PackageMetadata, Refusal
from extadmin.packaging.errors import shown

# Names per query: with the types and the excluded packages, well under SQLite's 999 parameters.
BATCH = 400
# PostgreSQL advisory lock taken first in an import's committing transaction (see entity_declarations_lock).
ENTITY_LOCK_KEY = 0x6578_7461_646D_0001  # "extadm" + 1

Pair = tuple[str, str]


def _declared(meta: PackageMetadata) -> list[Pair]:
    return list(dict.fromkeys((e.type, e.name) for e in meta.entities))


def _entity(pair: Pair) -> str:
    return f"{shown(pair[0])} '{shown(pair[1])}'"


def entity_owners(*, pairs: Iterable[Pair], exclude: Collection[str]) -> dict[Pair, str]:
    """Which of ``pairs`` an installed package (not one named in ``exclude``) declares: pair → ``Name:version``."""
    wanted = set(pairs)
    owners: dict[Pair, str] = {}
    ordered = iter(sorted(wanted))
    while batch := list(islice(ordered, BATCH)):
        rows = (
            Entity.objects.filter(type__in={t for t, _ in batch}, name__in={n for _, n in batch})
            .exclude(package__name__in=exclude)
            .values_list("type", "name", "package__name", "package__version")
        )
        for type_, name, package, version in rows:
            if (type_, name) in wanted:
                owners.setdefault((type_, name), f"{package}:{version}")
    return owners


def entity_collisions_check(
    *, meta: PackageMetadata, together: Collection[str] = (), at_commit: bool = False
) -> None:
    """Refuse ``meta`` if an installed package other than itself declares one of its entities.

    ``together``: names of the packages imported with it; their entities are replaced by this import
    and checked among themselves (``entity_collisions_together``). ``at_commit``: inside the
    committing transaction, after ``entity_declarations_lock``; then the refusal is a conflict at
    ``persist``, since the other package committed while this import ran.
    """
    declared = _declared(meta)
    owners = entity_owners(pairs=declared, exclude={meta.name, *together})
    clashes = [pair for pair in declared if pair in owners]
    if not clashes:
        return
    first = clashes[0]
    more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
    reason = f"{_entity(first)} is already declared by {owners[first]}{more}"
    if at_commit:
        raise Conflict("persist", f"{reason}, imported while this import ran; nothing was imported")
    raise Refusal("validate", reason)


def entity_collisions_together(members: list[tuple[str | None, PackageMetadata]]) -> None:
    """Among packages imported together (a bundle, several files): no two declare the same entity.

    Each member is ``(label, metadata)``; the refusal names both members and the entity, and is
    the second member's.
    """
    first_declared: dict[Pair, tuple[str | None, PackageMetadata]] = {}
    for label, meta in members:
        for pair in _declared(meta):
            other = first_declared.setdefault(pair, (label, meta))
            if other[1] is not meta:
                reason = (
                    f"{_entity(pair)} is declared by both {_member(*other)} and {_member(label, meta)}"
                )
                raise Refusal("validate", reason, file=label)


def _member(label: str | None, meta: PackageMetadata) -> str:
    return f"{label} ({meta.name}:{meta.version})" if label else f"{meta.name}:{meta.version}"


def entity_declarations_lock() -> None:
    """Serialise the committing transactions of imports, so two that declare one entity never both commit.

    Neither sees the other's uncommitted rows, and a new entity has no row yet to lock: on
    PostgreSQL one transaction-scoped advisory lock, taken first (before any row lock, so it
    never deadlocks with them); on SQLite the IMMEDIATE transaction already holds the write lock.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ENTITY_LOCK_KEY])
