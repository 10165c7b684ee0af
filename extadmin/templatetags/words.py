"""The console's words for stored values, one spelling everywhere (the operations' labels)."""
from __future__ import annotations

from django import template

from extadmin.models import Operation

register = template.Library()


@register.filter
def kind_word(kind: str) -> str:
    """``re-import`` for ``reimport``: an operation kind as the Operations list says it."""
    try:
        return str(Operation.Kind(kind).label)
    except ValueError:
        return kind
