"""Validating an uploaded package: a safe zip with a usable metadata.xml at its root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from extadmin.packaging.errors import Refusal, shown
from extadmin.packaging.metadata import PackageMetadata, parse_metadata
from extadmin.packaging.safezip import Limits, ZipPlan, inspect_zip, read_member, verify_zip

METADATA_NAME = "metadata.xml"
MAX_METADATA_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ValidatedPackage:
    metadata: PackageMetadata
    plan: ZipPlan


def validate_package(path: Path, *, limits: Limits) -> ValidatedPackage:
    """Check the zip, then its metadata.xml; refuse before anything is written anywhere."""
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
    verify_zip(path, plan=plan, limits=limits)
    return ValidatedPackage(metadata=metadata, plan=plan)
