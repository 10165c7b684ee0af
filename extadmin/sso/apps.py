from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.db.models.signals import post_migrate

from extadmin.sso.roles import roles_apply


def roles_after_migrate(*, using: str = "default", apps: Apps = global_apps, **_: Any) -> None:
    """The role groups follow the code after every migrate (and flush): their permissions exist by
    then, since this app comes after extadmin and nodes in INSTALLED_APPS and their post_migrate runs
    first. ``apps`` is the migration state's registry after a migrate, and absent after a flush."""
    group, permission = apps.get_model("auth", "Group"), apps.get_model("auth", "Permission")
    roles_apply(group_model=group, permission_model=permission, using=using)


class SsoConfig(AppConfig):
    name = "extadmin.sso"
    label = "sso"
    verbose_name = "Single sign-on"

    def ready(self) -> None:
        post_migrate.connect(roles_after_migrate, sender=self, dispatch_uid="extadmin.sso.roles")
