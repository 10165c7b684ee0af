"""extadmin: the admin console and node agents for extension packages across a cluster."""
from __future__ import annotations

from extadmin.celery import app as celery_app

__all__ = ["celery_app"]
