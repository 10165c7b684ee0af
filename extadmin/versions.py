"""Version history: the archives of a package's earlier versions, kept in the database for rollback.

``EXTADMIN_KEEP_VERSIONS`` versions of each package are kept, **the current one included** (3: the
current and the two before it). On an upgrade (or a re-import of other bytes) the import's step 4
moves the previous archive into a ``RetainedVersion`` — one UPDATE re-points its chunk rows, the
bytes never pass through Python and are never copied — and only then writes the new archive, last,
in the same transaction. A first import does nothing more than before. The oldest retained
versions beyond the limit are deleted in that transaction too.

A retained version streams like the current archive (``retained_copy_to``), verified as it goes:
a node kept on the previous version by a rollout fetches it from here.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings

from extadmin.archive import Staged, archive_write, chunks_stream, copy_verified, staged_discard
from extadmin.models import Archive, ArchiveChunk, ExtensionPackage, Quarantine, RetainedVersion
from extadmin.packaging import Unknown, is_safe_name

CHUNKS = ArchiveChunk._meta.db_table


# --- reads ------------------------------------------------------------------------------------
def retained_version(name: str, sha256: str) -> RetainedVersion | None:
    """The retained version of package ``name`` with checksum ``sha256``, or None."""
    return RetainedVersion.objects.filter(package__name=name, sha256=sha256).first()


@dataclass(frozen=True)
class VersionEntry:
    """One line of a package's version history (the current version first)."""

    version: str
    sha256: str
    size: int
    imported_at: datetime
    imported_by: str
    imported_on_node: str
    signer: str
    current: bool
    retained_id: int | None  # None for the current version
    quarantined: str | None  # the reason, when its checksum is quarantined

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version, "checksum": self.sha256, "size": self.size,
            "imported_at": self.imported_at.isoformat(), "imported_by": self.imported_by,
            "imported_on_node": self.imported_on_node, "signer": self.signer or None,
            "current": self.current, "quarantined": self.quarantined is not None,
            "quarantine_reason": self.quarantined or "",
        }


def package_versions(*, package: ExtensionPackage) -> list[VersionEntry]:
    """The current version, then the retained ones, newest import first."""
    retained = list(package.retained_versions.select_related("imported_by").order_by("-imported_at", "-id"))
    shas = [package.sha256, *(r.sha256 for r in retained)]
    reasons = dict(Quarantine.objects.filter(sha256__in=shas).values_list("sha256", "reason"))
    user = package.imported_by
    entries = [VersionEntry(
        version=package.version, sha256=package.sha256, size=package.size, imported_at=package.imported_at,
        imported_by=user.get_username() if user else "", imported_on_node=package.imported_on_node,
        signer=package.signer, current=True, retained_id=None, quarantined=reasons.get(package.sha256),
    )]
    entries += [VersionEntry(
        version=r.version, sha256=r.sha256, size=r.size, imported_at=r.imported_at,
        imported_by=r.imported_by.get_username() if r.imported_by else r.imported_by_name,
        imported_on_node=r.imported_on_node, signer=r.signer, current=False, retained_id=r.pk,
        quarantined=reasons.get(r.sha256),
    ) for r in retained]
    return entries


def package_get_for_version_change(*, name: str) -> ExtensionPackage:
    """The installed package ``name``, or a refusal (step ``validate``, 404) that says there is none."""
    package = ExtensionPackage.objects.filter(name=name).first() if is_safe_name(name) else None
    if package is None:
        raise Unknown("validate", f"no extension package named {name!r} is installed")
    return package


def versions_document(*, name: str) -> dict[str, Any]:
    """``versions NAME --json`` and ``GET /api/extensions/<name>/versions/``."""
    package = package_get_for_version_change(name=name)
    return {
        "name": package.name, "keep": settings.EXTADMIN_KEEP_VERSIONS,
        "versions": [v.as_dict() for v in package_versions(package=package)],
    }


def quarantine_reason(sha256: str) -> str | None:
    """Why ``sha256`` is quarantined, or None when it is not."""
    return Quarantine.objects.filter(sha256=sha256).values_list("reason", flat=True).first()


# --- streaming a retained version -------------------------------------------------------------
def retained_stream(*, version_id: int) -> Iterator[bytes]:
    """Yield the retained version's zip chunk by chunk, in order, one row in memory at a time."""
    retained = RetainedVersion.objects.get(pk=version_id)
    yield from chunks_stream(owner="retained_id", owner_id=version_id, chunk_count=retained.chunk_count)


def retained_copy_to(*, version_id: int, out: BinaryIO, expected_sha256: str) -> int:
    """Write the retained version's zip to ``out`` and prove it matches ``expected_sha256``; returns its size."""
    return copy_verified(retained_stream(version_id=version_id), out=out, expected_sha256=expected_sha256)


# --- writes: step 4 of the import -------------------------------------------------------------
def archive_replace(
    *, package: ExtensionPackage, previous: ExtensionPackage | None, path: Path, sha256: str, size: int,
    manifest: list[list], staged: Staged | None = None,
) -> Archive:
    """Step 4 of the import: keep the previous archive as a retained version, then the new one, last.

    ``previous``: the package row as validation read it (its version, importer, signature), None
    for a first import, which writes its archive exactly as before. Bytes that are already a
    retained version (a rollback, or an upload of a version rolled back from) are re-pointed back
    instead of written again (the chunks ``staged`` ahead, if any, go). Inside the caller's transaction.
    """
    if previous is None:  # a first import: nothing to keep, nothing to restore
        return archive_write(package=package, path=path, sha256=sha256, size=size, manifest=manifest, staged=staged)
    if previous.sha256 != sha256:
        _retain_current(package=package, previous=previous)
    restored = RetainedVersion.objects.filter(package=package, sha256=sha256).first()
    if restored is None:
        archive = archive_write(
            package=package, path=path, sha256=sha256, size=size, manifest=manifest, staged=staged,
        )
    else:
        staged_discard(staged)
        archive = _restore(package=package, retained=restored, manifest=manifest)
    _prune(package=package)
    return archive


def _retain_current(*, package: ExtensionPackage, previous: ExtensionPackage) -> None:
    """The current archive's chunks become a retained version's: one UPDATE, no byte moves."""
    current = Archive.objects.filter(package=package).first()
    if current is None or current.sha256 != previous.sha256:
        return  # nothing complete to keep (an import in flight never committed one)
    user = previous.imported_by
    retained = RetainedVersion.objects.create(
        package=package, version=previous.version, sha256=previous.sha256, size=current.size,
        chunk_size=current.chunk_size, chunk_count=current.chunk_count, manifest=current.manifest,
        vendor=previous.vendor, depends_on=previous.depends_on, ha_compatible=previous.ha_compatible,
        imported_by=user, imported_by_name=user.get_username() if user else "",
        imported_at=previous.imported_at, imported_on_node=previous.imported_on_node,
        signature=previous.signature, signer=previous.signer, signer_key=previous.signer_key,
    )
    ArchiveChunk.objects.filter(package=package).update(package=None, retained=retained)
    current.delete()


def _restore(*, package: ExtensionPackage, retained: RetainedVersion, manifest: list[list]) -> Archive:
    """A retained version's chunks become the current archive's again; its history row goes."""
    ArchiveChunk.objects.filter(package=package).delete()  # none left after _retain_current; a same-bytes safety
    Archive.objects.filter(package=package).delete()
    ArchiveChunk.objects.filter(retained=retained).update(package=package, retained=None)
    archive = Archive.objects.create(
        package=package, sha256=retained.sha256, size=retained.size, chunk_size=retained.chunk_size,
        chunk_count=retained.chunk_count, manifest=manifest,
    )
    retained.delete()
    return archive


def _prune(*, package: ExtensionPackage) -> None:
    """Only ``EXTADMIN_KEEP_VERSIONS`` versions stay, the current one counted: the oldest go."""
    keep = settings.EXTADMIN_KEEP_VERSIONS - 1
    ids = list(
        RetainedVersion.objects.filter(package=package).order_by("-imported_at", "-id").values_list("id", flat=True)
    )
    gone = ids[keep:]
    if gone:
        ArchiveChunk.objects.filter(retained_id__in=gone).delete()
        RetainedVersion.objects.filter(id__in=gone).delete()
