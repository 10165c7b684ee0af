"""Reads about packages, shared by the views, the API and the commands."""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from django.db.models.functions import Lower

from extadmin.models import ExtensionPackage, Operation
from extadmin.packaging import Refusal, parse_depends_on
from extadmin.packaging.errors import shown


def package_list() -> QuerySet[ExtensionPackage]:
    return ExtensionPackage.objects.select_related("imported_by").order_by(Lower("name"), "name")


def package_dependents(*, name: str) -> list[ExtensionPackage]:
    """Packages whose dependsOn names ``name``."""
    candidates = ExtensionPackage.objects.filter(depends_on__contains=name).exclude(name=name)
    return [p for p in candidates.order_by(Lower("name"), "name")
            if any(d.name == name for d in parse_depends_on(p.depends_on))]


def package_operations(*, name: str, limit: int = 50) -> QuerySet[Operation]:
    return Operation.objects.filter(package_name=name).prefetch_related("steps")[:limit]


OPERATION_FILTERS = ("package", "node", "user", "kind", "outcome")


@dataclass(frozen=True)
class OperationFilters:
    """The operations page's filters (its GET parameters); "" means any."""

    package: str = ""
    node: str = ""
    user: str = ""
    kind: str = ""
    outcome: str = ""


def operation_filters_refusal(filters: OperationFilters) -> Refusal | None:
    """A kind or outcome no operation can have, refused naming it (the console's and the API's words)."""
    for field, choices in (("kind", Operation.Kind), ("outcome", Operation.Outcome)):
        value = getattr(filters, field)
        if value and value not in choices.values:
            allowed = ", ".join(choices.values)
            return Refusal("filter", f"there is no {field} '{shown(value)}'; it is one of {allowed}")
    return None


def operation_search(filters: OperationFilters) -> QuerySet[Operation]:
    """The audit trail, newest first, narrowed by package, node, user, kind and outcome (exact)."""
    ops = Operation.objects.prefetch_related("steps").order_by("-started_at", "-id")
    if filters.package:
        ops = ops.filter(package_name=filters.package)
    if filters.node:
        ops = ops.filter(node=filters.node)
    if filters.user:
        ops = ops.filter(username=filters.user)
    if filters.kind:
        ops = ops.filter(kind=filters.kind)
    if filters.outcome:
        ops = ops.filter(outcome=filters.outcome)
    return ops


def operation_choices() -> dict[str, list[str]]:
    """What the filters can pick: the packages, nodes and users the trail names."""
    trail = Operation.objects.order_by()
    return {
        "package": sorted(set(trail.exclude(package_name="").values_list("package_name", flat=True).distinct())),
        "node": sorted(set(trail.exclude(node="").values_list("node", flat=True).distinct())),
        "user": sorted(set(trail.exclude(username="").values_list("username", flat=True).distinct())),
    }
