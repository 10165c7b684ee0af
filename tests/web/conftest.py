"""Users with and without the package permissions, and packages imported the way the browser does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from extadmin.models import ExtensionPackage
from extadmin.operations import Actor
from extadmin.services import package_import_file
from extadmin.storage import NodeStorage
from tests.packages import build_package
from tests.web.console_pages import admin_client, cluster  # noqa: F401  (fixtures: every state a page shows)


@pytest.fixture
def viewer(db) -> User:  # type: ignore[no-untyped-def]
    """Logged in, no permission: may look, may not change anything."""
    return User.objects.create_user("viewer", password="pw-viewer-1")


@pytest.fixture
def operator(db) -> User:  # type: ignore[no-untyped-def]
    user = User.objects.create_user("operator", password="pw-operator-1")
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="extadmin", codename__in=["add_extensionpackage", "delete_extensionpackage"]
        )
    )
    return user


@pytest.fixture
def viewer_client(viewer: User) -> Client:
    c = Client()
    c.force_login(viewer)
    return c


@pytest.fixture
def operator_client(operator: User) -> Client:
    c = Client()
    c.force_login(operator)
    return c


@pytest.fixture
def imported(node_storage: NodeStorage, pkgdir: Path, db) -> Callable[..., ExtensionPackage]:  # type: ignore[no-untyped-def]
    """Import a real package on this node (``web``), as an upload would."""

    def make(name: str, version: str = "1.0.0", **kwargs: object) -> ExtensionPackage:
        path = build_package(pkgdir, name, version, **kwargs)  # type: ignore[arg-type]
        package_import_file(path=path, actor=Actor(via="browser"))
        return ExtensionPackage.objects.get(name=name)

    return make
