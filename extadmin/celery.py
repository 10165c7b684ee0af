"""The Celery application; tasks live in nodes.tasks."""
from __future__ import annotations

import os

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "extadmin.settings")

# filesystem:// (the embedded default) writes each message whole before a consumer can see it.
TRANSPORT_ALIASES["filesystem"] = "extadmin.filesystem_broker:Transport"

app = Celery("extadmin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
