"""``dependsOn`` parsing and dependency ordering.

The vendor's docs separate items with ``;`` but real build tools write ``,``; both are accepted,
with spaces around items ignored.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from extadmin.packaging.errors import Refusal, shown
from extadmin.packaging.names import is_safe_name
from extadmin.packaging.versions import is_orderable

_SEPARATORS_RE = re.compile(r"[;,]")


@dataclass(frozen=True)
class Dependency:
    name: str
    version: str


def parse_depends_on(raw: str) -> tuple[Dependency, ...]:
    """Parse ``'A:1.0.0;B:2.1.0'`` (or with ``,``); empty text means no dependencies."""
    dependencies: list[Dependency] = []
    seen: set[str] = set()
    for item in (part.strip() for part in _SEPARATORS_RE.split(raw)):
        if not item:
            continue  # tolerate 'A:1.0.0;' and doubled separators
        name, colon, version = (piece.strip() for piece in item.partition(":"))
        if not colon or not is_safe_name(name) or not is_orderable(version):
            raise Refusal(
                "validate",
                f"dependsOn item '{shown(item)}' is malformed (expected Name:major.minor.patch)",
            )
        if name in seen:
            raise Refusal("validate", f"dependsOn names '{name}' more than once")
        seen.add(name)
        dependencies.append(Dependency(name=name, version=version))
    return tuple(dependencies)


def order_by_dependencies(items: Mapping[str, Iterable[str]]) -> list[str]:
    """Return the names of ``items`` with dependencies before their dependents.

    ``items`` maps a name to the names it depends on; names absent from ``items`` are ignored
    (they are already installed). Among names that are ready at the same time the order is
    alphabetical, so the result is stable. A cycle is refused, naming it.
    """
    requires = {name: set(deps) & items.keys() for name, deps in items.items()}
    dependents: dict[str, set[str]] = {name: set() for name in requires}
    for name, deps in requires.items():
        for dep in deps:
            dependents[dep].add(name)

    waiting = {name: len(deps) for name, deps in requires.items()}
    ready = [name for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    ordered: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        ordered.append(name)
        for dependent in dependents[name]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, dependent)

    if len(ordered) < len(requires):
        stuck = {name for name, count in waiting.items() if count > 0}
        cycle = _find_cycle({name: requires[name] & stuck for name in stuck})
        raise Refusal("validate", "dependency cycle: " + " → ".join(cycle))
    return ordered


def _find_cycle(requires: Mapping[str, set[str]]) -> list[str]:
    """Walk from the first stuck name until a name repeats; every stuck name has a stuck dep."""
    path: list[str] = []
    position: dict[str, int] = {}
    name = min(requires)
    while name not in position:
        position[name] = len(path)
        path.append(name)
        name = min(requires[name])
    return [*path[position[name] :], name]
