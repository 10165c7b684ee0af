"""The dashboard's rows as HTML, written in Python: at 100 nodes × 50 packages a page the grid holds
5,000 cells, and the template engine's cost per variable (a lookup, a filter, an escape each) was
most of the page's time. The markup is the one the templates showed, cell for cell: every cell
says its state in words, links to what can be done about it, and carries its id for live.js.

Every value is escaped (``html.escape``, as the templates' autoescape does); the fragments that do
not depend on a cell's data are built once per page.
"""
from __future__ import annotations

from html import escape

from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from extadmin.templatetags.clocks import ago
from nodes.convergence import FAILED, INSTALLED, OFFLINE
from nodes.presenters import Cell, NodeView, PackageRow


def _row_head(row: PackageRow, name: str) -> str:
    """The row's ``<tr>`` and its package, nodes and time columns (both views start the same)."""
    badge = "" if row.state == "active" else f' <span class="badge s-{escape(row.state)}">{escape(row.state)}</span>'
    return (
        f'\n      <tr class="{"done" if row.done else "open"}" id="row-{name}">\n'
        f'        <th class="pkg" scope="row"><a href="{escape(row.url)}">{name}</a> '
        f'<span class="ver">{escape(row.version)}</span>{badge}</th>\n'
        f'        <td class="count" data-package="{name}">{escape(row.nodes_text)}</td>\n'
    )


def _times(row: PackageRow) -> str:
    return (
        f'        <td class="muted">{ago(row.imported_at)}</td>\n'
        f'        <td class="muted">{escape(row.time_to_converge or "—")}</td>\n'
    )


class _NodeText:
    """A node's escaped name, id and links, built once per page instead of once per cell."""

    __slots__ = ("forget", "id", "name", "sync", "url")

    def __init__(self, node: NodeView, *, can_sync: bool, can_forget: bool) -> None:
        self.name = escape(node.name)
        self.id = escape(str(node.id))
        self.url = escape(node.url)
        self.sync = f'<a class="act" href="{self.url}#actions">' if node.url and can_sync else ""
        self.forget = f'<a class="act" href="{self.url}forget/">forget node…</a>' if node.url and can_forget else ""


def _grid_cell(cell: Cell, name: str, node: _NodeText) -> str:
    state = cell.state
    degraded = escape(cell.degraded) if cell.degraded else ""
    marked = f' data-degraded="{degraded}"' if degraded else ""
    mark = f'<small class="degraded-mark" title="{degraded}">degraded</small>' if degraded else ""
    head = (
        f'<td class="cell s-{escape(state)}{" converged" if cell.converged else ""}" data-package="{name}" '
        f'data-node="{node.name}" data-state="{escape(state)}" title="{escape(cell.title)}" '
        f'id="cell-{name}-{node.id}"{marked}>\n  {mark}\n  '
    )
    if state == INSTALLED:
        body = (f'<b class="vh">installed</b> <span class="ver">{escape(cell.version)}</span> '
                f'<code>{escape(cell.short_sha)}</code>\n  ')
    elif state == OFFLINE:
        reported = cell.reported_label
        said = f" <small>last reported {escape(reported)}</small>" if reported else ""
        body = f"<span>offline</span>{said}\n  "
    elif state == FAILED:
        words = Truncator(cell.error_words).chars(60)
        body = f'<span>failed</span> <small class="err" title="{escape(cell.error)}">{escape(words)}</small>\n  '
    elif cell.outdated:
        body = f"<span>pending</span> <small>has {escape(cell.version)}</small>\n  "
    else:
        body = f"<span>{escape(state)}</span>"
    action = ""
    if not cell.converged:
        if state != OFFLINE:
            if node.sync:
                action = node.sync + ("retry…" if state == FAILED else "sync now…") + "</a>"
        else:
            action = node.forget
    return f"{head}{body}\n  {action}\n</td>"


def grid_rows(rows: list[PackageRow], nodes: list[NodeView], *, can_sync: bool, can_forget: bool) -> SafeString:
    """The grid's ``<tbody>`` rows: a row per package, a cell per node of ``nodes``."""
    texts = {n.id: _NodeText(n, can_sync=can_sync, can_forget=can_forget) for n in nodes}
    out = []
    for row in rows:
        name = escape(row.name)
        out.append(_row_head(row, name))
        out.append(_times(row))
        out.append("        ")
        for cell in row.cells:
            node = texts.get(cell.node.id) or _NodeText(cell.node, can_sync=can_sync, can_forget=can_forget)
            out.append(_grid_cell(cell, name, node))
        out.append("\n      </tr>\n      ")
    return mark_safe("".join(out))  # noqa: S308 — every value above is escaped


def compact_rows(rows: list[PackageRow]) -> SafeString:
    """The compact view's ``<tbody>`` rows: a package's counts and its selected cells as chips."""
    out = []
    for row in rows:
        name = escape(row.name)
        out.append(
            f'\n    <tr class="{"done" if row.done else "open"}" id="row-{name}">\n'
            f'      <th class="pkg" scope="row"><a href="{escape(row.url)}">{name}</a> '
            f'<span class="ver">{escape(row.version)}</span> <code>{escape(row.short_sha)}</code></th>\n'
            f'      <td class="count" data-package="{name}">{escape(row.nodes_text)}</td>\n'
            '      <td class="states">'
        )
        out.extend(f'<span class="badge s-{escape(s)}">{n} {escape(s)}</span> ' for s, n in row.sorted_counts)
        out.append(
            "</td>\n"
            f'      <td class="muted">{ago(row.imported_at)}</td>\n'
            f'      <td class="muted">{escape(row.time_to_converge or "—")}</td>\n'
            '      <td class="open-cells">'
        )
        for cell in row.cells:
            node, node_name = cell.node, escape(cell.node.name)
            marked = f' data-degraded="{escape(cell.degraded)}"' if cell.degraded else ""
            out.append(
                f'<a class="chip s-{escape(cell.state)}" href="{escape(node.url)}#actions" '
                f'title="{escape(cell.title)}" '
                f'data-package="{name}" data-node="{node_name}" data-state="{escape(cell.state)}" '
                f'id="cell-{name}-{node.id}"{marked}>{node_name}: {escape(cell.label)}'
                f'{" · degraded" if cell.degraded else ""}</a> '
            )
        if row.hidden_matched:
            out.append(f'<a href="{escape(row.url)}">+{row.hidden_matched} more</a>')
        out.append("</td>\n    </tr>\n    ")
    return mark_safe("".join(out))  # noqa: S308 — every value above is escaped
