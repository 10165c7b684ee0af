"""Validating an uploaded package: a safe zip with a usable metadata.xml at its root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from extadmin.packaging.errors import Refusal, shown
from extadmin.packaging.metadata import PackageMetadata, parse_metadata
from extadmin.packaging.safezip import Limits, ZipPlan, inspect_zip, read_member, unpack_hashed, verify_zip

METADATA_NAME = "metadata.xml"
MAX_METADATA_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ValidatedPackage:
    metadata: PackageMetadata
    plan: ZipPlan
    # The zip's SHA-256 when validation also unpacked it (``unpack_into``): that folder holds
    # every file, checked; None when it did not (the caller unpacks it itself).
    unpacked_sha256: str | None = None


def validate_package(path: Path, *, limits: Limits, unpack_into: Path | None = None) -> ValidatedPackage:
    """Check the zip, then its metadata.xml; refuse before anything is written anywhere.

    ``unpack_into``: an empty private folder (nobody else looks into it) where the last check,
    which reads every entry's bytes anyway, also hashes the zip and writes its files, so that an
    import reads the zip once instead of three times. A refusal empties it again; a write error
    (a full disk) empties it too and validation goes on as without it, leaving the unzip step to
    report that error as usual.
    """
    plan = inspect_zip(path, limits=limits)
    if METADATA_NAME not in plan.names():
        raise Refusal("validate", "metadata.xml is missing at the root of the package")
    metadata = parse_metadata(read_member(path, METADATA_NAME, max_bytes=MAX_METADATA_BYTES))
    if len(metadata.entities) > limits.max_entities:
        # Each entity is a row and a line on every page that lists them: 290,000 made a 240 MB page.
        raise Refusal(
            "validate",
            f"metadata.xml declares {len(metadata.entities)} entities, more than the limit of {limits.max_entities}",
        )
    # Nodes keep '<name>.chk' beside the package folder to mark a complete install; an entry
    # with that name would make a half-written package look complete. Compared case-insensitively
    # because some nodes' file systems are.
    marker = f"{metadata.name}.chk".lower()
    for member in plan.members:
        if member.name.partition("/")[0].lower() == marker:
            raise Refusal(
                "validate",
                f"entry '{shown(member.name)}' collides with the marker file '{metadata.name}.chk'",
            )
    # Sizes that lie and bad CRCs show only in the bytes: find them now, not half-way through unzip.
    if unpack_into is not None:
        try:
            digest = unpack_hashed(path, unpack_into, plan=plan, limits=limits, step="validate")
        except OSError:
            pass  # emptied: checked below without writing, and the unzip step writes (and says) it again
        else:
            return ValidatedPackage(metadata=metadata, plan=plan, unpacked_sha256=digest)
    verify_zip(path, plan=plan, limits=limits)
    return ValidatedPackage(metadata=metadata, plan=plan)
