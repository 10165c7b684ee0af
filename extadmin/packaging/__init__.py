"""The pure packaging layer: checking, reading and unpacking extension zips.

No Django here: the web views, the importer, the CLI and the node agents all build on it.
"""

from __future__ import annotations

from extadmin.packaging.dependencies import Dependency, order_by_dependencies, parse_depends_on
from extadmin.packaging.errors import Conflict, NoSpace, Refusal, TooLarge, Unknown
from extadmin.packaging.metadata import EntityDecl, PackageMetadata, parse_metadata
from extadmin.packaging.names import is_safe_name
from extadmin.packaging.package import MAX_METADATA_BYTES, ValidatedPackage, validate_package
from extadmin.packaging.safezip import (
    Limits,
    Member,
    ZipPlan,
    check_ratio,
    extract_member_to,
    extract_zip,
    inspect_zip,
    read_member,
)
from extadmin.packaging.versions import Version, parse_version

__all__ = [
    "MAX_METADATA_BYTES",
    "Conflict",
    "Dependency",
    "EntityDecl",
    "Limits",
    "Member",
    "NoSpace",
    "PackageMetadata",
    "Refusal",
    "TooLarge",
    "Unknown",
    "ValidatedPackage",
    "Version",
    "ZipPlan",
    "check_ratio",
    "extract_member_to",
    "extract_zip",
    "inspect_zip",
    "is_safe_name",
    "order_by_dependencies",
    "parse_depends_on",
    "parse_metadata",
    "parse_version",
    "read_member",
    "validate_package",
]
