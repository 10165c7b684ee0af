"""The console's words for stored values, one spelling everywhere (the operations' labels)."""
from __future__ import annotations

from django import template

from extadmin.models import Operation
from nodes.presenters import error_words as words_of_error

register = template.Library()


@register.filter
def kind_word(kind: str) -> str:
    """``re-import`` for ``reimport``: an operation kind as the Operations list says it."""
    try:
        return str(Operation.Kind(kind).label)
    except ValueError:
        return kind


@register.filter
def error_words(error: str) -> str:
    """An error in words, never cut mid-path (``nodes.presenters.error_words``); show the full text
    in the element's title."""
    return words_of_error(error or "")
