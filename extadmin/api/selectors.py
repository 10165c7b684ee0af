"""Reads for the API that no other door needs in this shape."""
from __future__ import annotations

from django.db.models import QuerySet

from extadmin.models import Entity, ExtensionPackage, Operation
from extadmin.selectors import OperationFilters, operation_search, package_list
from nodes.models import Node

MAX_OPERATIONS = 1000


def package_get(*, name: str) -> ExtensionPackage | None:
    return package_list().filter(name=name).first()


def package_entities(*, package: ExtensionPackage) -> QuerySet[Entity]:
    """The package's entities in a stable order, for paging (never all of them in one document)."""
    return Entity.objects.filter(package=package).order_by("type", "name", "id")


def operation_list(*, filters: OperationFilters | None = None, limit: int = 100) -> QuerySet[Operation]:
    """The audit trail, newest first, narrowed as the console's operations page narrows it."""
    ops = operation_search(filters or OperationFilters()).select_related("user")
    return ops[: max(1, min(limit, MAX_OPERATIONS))]


def node_get(*, name: str) -> Node | None:
    return Node.objects.filter(name=name).first()
