"""What part of the dashboard an operator asked for: ``/?q=TEXT&state=FILTER&sort=KEY&page=N&view=V``.

- ``q`` — case-insensitive text in package **or** node names: the packages whose name contains it
  (all of them when none does), shown on the nodes whose name contains it (all when none does);
  when neither a package nor a node name contains it, nothing is shown, and the page says so.
- ``state`` — ``not_converged``, ``failed``, ``offline``, ``syncing``, ``pending`` (the cell's
  words, selected by ``nodes.convergence.matches``: one rule), or ``all``. Only packages with at
  least one selected cell are listed; the grid shows only the nodes with one, the compact view
  only the selected cells. Above ``COMPACT_ABOVE_NODES`` nodes the default is ``not_converged``.
- ``sort`` — ``name`` (A to Z, ignoring case; the default), ``state`` (least converged first),
  ``imported`` (newest import first).
- ``page`` — ``PAGE_SIZE`` packages a page.
- ``view`` — ``grid`` or ``compact``; by default compact above ``COMPACT_ABOVE_NODES`` nodes.

A value that is not one of these is ignored, and the page says which and why (never a 500).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from nodes.convergence import NOT_CONVERGED, STATE_FILTERS, Verdict, matches
from nodes.presenters import COMPACT_ABOVE_NODES, CellMatch, Dashboard, NodeView, PackageRow

PAGE_SIZE = 50
SORTS = ("name", "state", "imported")
VIEWS = ("grid", "compact")
ALL = "all"
MAX_QUERY = 128


@dataclass
class GridQuery:
    q: str = ""
    state: str = ""  # one of STATE_FILTERS, or "" for every state
    sort: str = "name"
    page: int = 1
    view: str = ""  # "grid", "compact", or "" for the size's default
    state_by_default: bool = False  # chosen by the cluster's size, not by the URL
    state_asked: str = ""  # what the URL said and was kept: a filter, "all", or ""
    notes: list[str] = field(default_factory=list)

    def compact(self, nodes: int) -> bool:
        return self.view == "compact" if self.view else nodes > COMPACT_ABOVE_NODES

    def params(self, **changes: object) -> str:
        """This query as a URL's query string (``?q=…``), with ``changes``; empty values left out."""
        values: dict[str, object] = {"q": self.q, "state": self.state_asked,
                                     "sort": "" if self.sort == "name" else self.sort, "view": self.view, "page": ""}
        values.update(changes)
        kept = {k: v for k, v in values.items() if v not in ("", None, 1)}
        return "?" + urlencode(kept) if kept else "?"


def _one(params: Mapping[str, str], name: str) -> str:
    return (params.get(name) or "").strip()


def parse_grid_query(params: Mapping[str, str], *, nodes: int) -> GridQuery:
    """The query from a request's GET parameters; a bad value is left out with a note."""
    query = GridQuery(q=_one(params, "q"))
    if len(query.q) > MAX_QUERY:
        query.notes.append(f"q: the search text is longer than {MAX_QUERY} characters; only its start is used")
        query.q = query.q[:MAX_QUERY]
    state, sort, view, page = (_one(params, k) for k in ("state", "sort", "view", "page"))
    if state and state != ALL and state not in STATE_FILTERS:
        choose = ", ".join(STATE_FILTERS)
        query.notes.append(f"state: {state!r} is not a filter (choose {choose} or all); showing every state")
    elif state:
        query.state, query.state_asked = ("" if state == ALL else state), state
    if sort and sort not in SORTS:
        query.notes.append(f"sort: {sort!r} is not a sort order (choose {', '.join(SORTS)}); sorted by name")
    elif sort:
        query.sort = sort
    if view and view not in VIEWS:
        query.notes.append(f"view: {view!r} is not a view (choose grid or compact); the default view is shown")
    elif view:
        query.view = view
    if page:
        if page.isdigit() and int(page) >= 1:
            query.page = int(page)
        else:
            query.notes.append(f"page: {page[:20]!r} is not a page number (1, 2, …); showing page 1")
    if not state and nodes > COMPACT_ABOVE_NODES:
        query.state, query.state_by_default = NOT_CONVERGED, True
    return query


def cell_match(query: GridQuery, node_ids: set[int] | None) -> CellMatch | None:
    """The cells ``query`` selects; None for the default (not converged, every node), which
    ``nodes.presenters`` applies without a call per cell."""
    state = query.state
    if node_ids is None and state in ("", NOT_CONVERGED):
        return None

    def match(node: NodeView, v: Verdict) -> bool:
        if node_ids is not None and node.id not in node_ids:
            return False
        return matches(state, v) if state else not v.converged

    return match


def searched_nodes(query: GridQuery, nodes: list[tuple]) -> set[int] | None:
    """The ids of the nodes whose name contains ``q``; None when none does (then every node)."""
    if not query.q:
        return None
    text = query.q.casefold()
    found = {n[0] for n in nodes if text in n[1].casefold()}
    return found or None


@dataclass
class GridPage:
    """The part of the dashboard one page shows; ``grid`` keeps the whole cluster's counters."""

    grid: Dashboard
    query: GridQuery
    rows: list[PackageRow]
    nodes: list[NodeView]
    matching: int  # packages the query selects, on every page
    pages: int
    empty_reason: str = ""

    @property
    def filtered(self) -> bool:
        return bool(self.query.q or self.query.state)

    @property
    def state_words(self) -> str:
        return self.query.state.replace("_", " ")

    @property
    def compact_above(self) -> int:
        return COMPACT_ABOVE_NODES

    @property
    def previous_url(self) -> str:
        return self.query.params(page=self.query.page - 1) if self.query.page > 1 else ""

    @property
    def next_url(self) -> str:
        return self.query.params(page=self.query.page + 1) if self.query.page < self.pages else ""

    def sort_url(self, key: str) -> str:
        return self.query.params(sort=key)

    @property
    def sort_links(self) -> list[tuple[str, str, bool]]:
        return [(key, self.query.params(sort=key), key == self.query.sort) for key in SORTS]


def _sort_key(sort: str) -> Callable[[PackageRow], Any]:
    if sort == "state":  # not done first, then the smallest share of converged nodes
        return lambda r: (r.done, r.converged / r.total if r.total else 1.0, r.name.casefold())
    if sort == "imported":  # newest first; rows without an import (removed) last
        return lambda r: (r.imported_at is None, -r.imported_at.timestamp() if r.imported_at else 0.0,
                          r.name.casefold())
    return lambda r: r.name.casefold()


def grid_page(grid: Dashboard, query: GridQuery, *, node_ids: set[int] | None) -> GridPage:
    """Filter ``grid``'s rows by ``query`` (its cells were selected by ``cell_match``), sort, cut a page."""
    rows = grid.rows
    text = query.q.casefold()
    named = [r for r in rows if text in r.name.casefold()] if text else rows
    if text and not named and node_ids is None:
        return GridPage(grid=grid, query=query, rows=[], nodes=[], matching=0, pages=1,
                        empty_reason=f"No package or node name contains {query.q!r}.")
    rows = named or rows
    if query.state:
        rows = [r for r in rows if r.matched]
    rows = sorted(rows, key=_sort_key(query.sort))
    pages = max((len(rows) + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    if query.page > pages:
        query.notes.append(f"page: there are {pages} page(s) of packages; showing the last")
        query.page = pages
    shown = rows[(query.page - 1) * PAGE_SIZE: query.page * PAGE_SIZE]
    nodes = grid.nodes
    if query.state or node_ids is not None:
        wanted = set().union(*(r.matched_nodes for r in shown)) if query.state else set(node_ids or ())
        nodes = [n for n in nodes if n.id in wanted]
        if not grid.compact:
            shown = [replace(r, cells=[c for c in r.cells if c.node.id in wanted]) for r in shown]
    reason = "" if shown else _nothing(query)
    return GridPage(grid=grid, query=query, rows=shown, nodes=nodes, matching=len(rows), pages=pages,
                    empty_reason=reason)


def _nothing(query: GridQuery) -> str:
    what = f"in state {query.state.replace('_', ' ')}" if query.state else ""
    if query.q:
        what = f"{what} matching {query.q!r}".strip()
    if query.state == NOT_CONVERGED and not query.q:
        return "Every package is converged on every online node."
    return f"No package has a cell {what}.".replace("  ", " ")
