"""``{% grid_rows view %}`` and ``{% compact_rows view %}``: the dashboard's rows (``extadmin.web.grid``)."""
from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString

from extadmin.web import grid
from nodes.dashboard_query import GridPage

register = template.Library()


@register.simple_tag(takes_context=True)
def grid_rows(context: Any, view: GridPage) -> SafeString:
    """The grid's rows; the actions a cell links to are the ones the operator may take."""
    perms = context.get("perms")
    return grid.grid_rows(
        view.rows, view.nodes,
        can_sync=bool(perms and "nodes.change_node" in perms), can_forget=bool(perms and "nodes.delete_node" in perms),
    )


@register.simple_tag
def compact_rows(view: GridPage) -> SafeString:
    return grid.compact_rows(view.rows)
