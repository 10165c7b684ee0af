"""Reads that compose one console page from the package and node selectors."""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby

from django.core.paginator import Page, Paginator
from django.db.models import Count
from django.db.models.functions import Lower
from django.utils import timezone

from extadmin.models import ExtensionPackage, Operation
from extadmin.packaging import Refusal, parse_depends_on
from extadmin.selectors import package_dependents, package_operations
from nodes.convergence import Tally
from nodes.presenters import (
    Cell,
    Timeline,
    cells_tally,
    format_duration,
    node_url,
    nodes_summary,
    package_cells,
    timeline,
)
from nodes.selectors import node_rows, package_state_rows
from nodes.tampering import Tampering, package_tampering

ENTITIES_PER_PAGE = 100


@dataclass
class DependencyView:
    name: str
    version: str
    installed_version: str | None  # None when the dependency is not in the database


@dataclass
class PackagePage:
    name: str
    package: ExtensionPackage | None  # None once removed: the page then shows its history
    entity_groups: list[tuple[str, int, list[str]]]  # type, how many of that type in all, names on this page
    dependencies: list[DependencyView]
    dependents: list[ExtensionPackage]
    cells: list[Cell]
    timeline: Timeline | None
    operations: list[Operation]
    entity_page: Page | None = None  # the page of entities shown (``?entities=N``)
    tampering: list[Tampering] = field(default_factory=list)  # nodes that refused its archive

    @property
    def tally(self) -> Tally:
        return cells_tally(self.cells)

    @property
    def converged(self) -> bool:
        return self.tally.converged

    @property
    def nodes_text(self) -> str:
        """``3/3 online, 1 offline``, as on the dashboard."""
        return nodes_summary(self.tally)

    @property
    def live(self) -> bool:
        """Worth polling: the package is there, or some node still has to remove it."""
        return self.package is not None or any(not c.converged for c in self.cells)

    @property
    def imported_on_url(self) -> str:
        return node_url(self.package.imported_on_node) if self.package is not None else ""

    @property
    def since_import(self) -> str:
        if self.package is None:
            return ""
        return format_duration((timezone.now() - self.package.imported_at).total_seconds())


def _dependencies(raw: str) -> list[DependencyView]:
    try:
        declared = parse_depends_on(raw)
    except Refusal:  # validated on import; never let an odd stored value break the page
        return [DependencyView(name=raw, version="", installed_version=None)]
    have = dict(
        ExtensionPackage.objects.filter(name__in=[d.name for d in declared]).values_list("name", "version")
    )
    return [DependencyView(name=d.name, version=d.version, installed_version=have.get(d.name)) for d in declared]


def _entity_groups(package: ExtensionPackage, number: str | None) -> tuple[Page, list[tuple[str, int, list[str]]]]:
    """One page of the package's entities, grouped by type (a package may declare 10,000)."""
    entities = package.entities.order_by("type", Lower("name"), "name", "id").values_list("type", "name")
    page = Paginator(entities, ENTITIES_PER_PAGE).get_page(number)  # a bad number shows the first or last page
    totals = dict(package.entities.values_list("type").annotate(n=Count("id")).values_list("type", "n"))
    groups = [(t, totals.get(t, 0), [n for _, n in items]) for t, items in groupby(page, key=lambda e: e[0])]
    return page, groups


def package_page(*, name: str, entities: str | None = None) -> PackagePage | None:
    """The package, or its history once removed; None when the name was never seen.

    ``entities`` is the page of the package's entities to show, as the request gave it.
    """
    package = ExtensionPackage.objects.select_related("imported_by").filter(name=name).first()
    operations = list(package_operations(name=name))
    if package is None:
        if not operations:
            return None
        cells = package_cells(nodes=node_rows(), package=None, states=package_state_rows(name=name))
        return PackagePage(name=name, package=None, entity_groups=[], dependencies=[], dependents=[],
                           cells=cells, timeline=None, operations=operations)
    entity_page, groups = _entity_groups(package, entities)
    nodes, states = node_rows(), package_state_rows(name=name)
    cells = package_cells(nodes=nodes, package=(package.sha256, package.state), states=states)
    return PackagePage(
        name=name,
        package=package,
        entity_groups=groups,
        dependencies=_dependencies(package.depends_on),
        dependents=package_dependents(name=name),
        cells=cells,
        timeline=timeline(imported_at=package.imported_at, cells=cells),
        operations=operations,
        entity_page=entity_page,
        tampering=package_tampering(nodes=nodes, states=states),
    )

