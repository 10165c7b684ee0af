from __future__ import annotations

from django.apps import AppConfig


class ExtadminConfig(AppConfig):
    name = "extadmin"
    verbose_name = "Extension packages"
