"""Reads about packages, shared by the views, the API and the commands."""
from __future__ import annotations

from django.db.models import QuerySet
from django.db.models.functions import Lower

from extadmin.models import ExtensionPackage, Operation
from extadmin.packaging import parse_depends_on


def package_list() -> QuerySet[ExtensionPackage]:
    return ExtensionPackage.objects.select_related("imported_by").order_by(Lower("name"), "name")


def package_dependents(*, name: str) -> list[ExtensionPackage]:
    """Packages whose dependsOn names ``name``."""
    candidates = ExtensionPackage.objects.filter(depends_on__contains=name).exclude(name=name)
    return [p for p in candidates.order_by(Lower("name"), "name")
            if any(d.name == name for d in parse_depends_on(p.depends_on))]


def package_operations(*, name: str, limit: int = 50) -> QuerySet[Operation]:
    return Operation.objects.filter(package_name=name).prefetch_related("steps")[:limit]
