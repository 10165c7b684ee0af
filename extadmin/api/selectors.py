"""Reads for the API that no other door needs in this shape."""
from __future__ import annotations

from django.db.models import QuerySet

from extadmin.models import ExtensionPackage, Operation
from extadmin.selectors import package_list

MAX_OPERATIONS = 1000


def package_get(*, name: str) -> ExtensionPackage | None:
    return package_list().prefetch_related("entities").filter(name=name).first()


def operation_list(*, package: str | None = None, limit: int = 100) -> QuerySet[Operation]:
    """The audit trail, newest first; ``package`` narrows it to one package's operations."""
    ops = Operation.objects.select_related("user").prefetch_related("steps")
    if package:
        ops = ops.filter(package_name=package)
    return ops.order_by("-started_at", "-id")[: max(1, min(limit, MAX_OPERATIONS))]
