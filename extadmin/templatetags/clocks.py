"""Times on the console's pages: every one says its zone, and a relative time ("3 min ago") stays
true after the page is drawn (console.js counts it on from its machine-readable ``datetime``)."""
from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html

from nodes.presenters import format_duration, moment_text

register = template.Library()


def iso(moment: datetime) -> str:
    """The moment in the console's time zone, ISO 8601 to the millisecond, as browsers parse it."""
    return timezone.localtime(moment).isoformat(timespec="milliseconds")


@register.filter
def ago(moment: datetime | None) -> str:
    """``<time datetime="…">3 min 5 s</time>``: how long ago, counted on in the browser; '' for None."""
    if moment is None:
        return ""
    elapsed = format_duration((timezone.now() - moment).total_seconds())
    return format_html('<time datetime="{}" data-since title="{}">{}</time>', iso(moment), moment_text(moment),
                       elapsed)


@register.simple_tag
def server_now() -> str:
    """Now by the server's clock: console.js measures the browser's clock against it."""
    return iso(timezone.now())
