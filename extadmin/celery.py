"""The Celery application; tasks live in nodes.tasks."""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "extadmin.settings")

app = Celery("extadmin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
