"""Django admin: every model can be inspected, nothing edited, and a delete is the ordered removal."""
from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.db import models
from django.urls import reverse
from django.utils import timezone

from extadmin.models import ExtensionPackage, Operation
from extadmin.quarantine import package_quarantine
from nodes.models import ClusterSettings, Node, SyncRun
from tests.extadmin.conftest import assert_nothing_of

ADMIN_MODELS = [m for m in admin.site._registry if m._meta.app_label in ("extadmin", "nodes")]


def _url(model: type[models.Model], view: str, *args: object) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def one_of_each(imported) -> None:
    """A row of every model: an import makes most of them; the sync history and switches are added."""
    imported("Alpha", description="<script>alert(1)</script>")
    imported("Alpha", "2.0.0")  # 1.0.0 is retained (extadmin.versions)
    package_quarantine(name="Alpha", version="1.0.0", reason="<b>bad</b>")
    node = Node.objects.get(name="web")
    SyncRun.objects.create(node=node, trigger=SyncRun.Trigger.STARTUP, started_at=timezone.now())
    ClusterSettings.objects.get_or_create(pk=1)


@pytest.mark.django_db
def test_it_registers_every_model_of_both_apps():
    expected = {
        m for app in ("extadmin", "nodes") for m in admin.site._registry if m._meta.app_label == app
    }
    from django.apps import apps

    for app in ("extadmin", "nodes"):
        for model in apps.get_app_config(app).get_models():
            if model._meta.model_name in ("archivechunk", "operationstep", "uploadphase", "stagedarchive"):
                # shown inside their parent's page (chunks are bytes; steps are inline), a
                # console upload's progress, deleted the moment the upload answers, or an archive
                # on its way in, which only its import's uncommitted transaction ever sees
                continue
            assert model in expected, f"{model._meta.label} is not in the admin"


@pytest.mark.django_db
@pytest.mark.parametrize("model", ADMIN_MODELS, ids=lambda m: m._meta.label)
def test_it_shows_the_changelist_and_the_detail_page_of_every_model(client, superuser, one_of_each, model):
    client.force_login(superuser)
    obj = model.objects.first()
    assert obj is not None

    listing = client.get(_url(model, "changelist"))
    detail = client.get(_url(model, "change", obj.pk))

    assert listing.status_code == 200
    assert detail.status_code == 200
    assert b"<script>alert(1)</script>" not in listing.content + detail.content


@pytest.mark.django_db
@pytest.mark.parametrize("model", ADMIN_MODELS, ids=lambda m: m._meta.label)
def test_it_offers_no_add_and_no_change(client, superuser, one_of_each, model):
    client.force_login(superuser)
    obj = model.objects.first()

    assert client.get(_url(model, "add")).status_code == 403
    assert client.post(_url(model, "change", obj.pk), {}).status_code == 403
    assert b'name="_save"' not in client.get(_url(model, "change", obj.pk)).content


@pytest.mark.django_db
@pytest.mark.parametrize("model", [m for m in ADMIN_MODELS if m is not ExtensionPackage], ids=lambda m: m._meta.label)
def test_it_offers_no_delete_except_for_packages(client, superuser, one_of_each, model):
    client.force_login(superuser)
    obj = model.objects.first()

    assert client.post(_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=obj.pk).exists()


@pytest.mark.django_db
def test_it_removes_a_package_deleted_in_the_admin_through_the_ordered_removal(
    client, superuser, node_storage, imported
):
    package = imported("Alpha")
    client.force_login(superuser)

    page = client.get(_url(ExtensionPackage, "delete", package.pk))
    assert page.status_code == 200
    response = client.post(_url(ExtensionPackage, "delete", package.pk), {"post": "yes"}, REMOTE_ADDR="10.0.0.9")

    assert response.status_code == 302
    assert_nothing_of(node_storage, "Alpha")
    op = Operation.objects.get(kind="remove")
    assert (op.outcome, op.via, op.username, op.remote_addr) == ("succeeded", "admin", "root", "10.0.0.9")


@pytest.mark.django_db
def test_it_removes_packages_with_the_admin_action(client, superuser, node_storage, imported):
    alpha, beta = imported("Alpha"), imported("Beta")
    client.force_login(superuser)

    response = client.post(
        _url(ExtensionPackage, "changelist"),
        {"action": "remove_packages", "_selected_action": [alpha.pk, beta.pk]},
    )

    assert response.status_code == 302
    assert_nothing_of(node_storage, "Alpha")
    assert_nothing_of(node_storage, "Beta")
    assert set(Operation.objects.filter(kind="remove").values_list("via", flat=True)) == {"admin"}


@pytest.mark.django_db
def test_it_reports_a_refused_admin_removal_and_keeps_the_package(client, superuser, node_storage, imported):
    base = imported("Base")
    imported("Top", depends_on="Base:1.0.0")
    client.force_login(superuser)

    response = client.post(_url(ExtensionPackage, "delete", base.pk), {"post": "yes"}, follow=True)

    assert response.status_code == 200
    assert response.redirect_chain == [(_url(ExtensionPackage, "change", base.pk), 302)]
    assert [m.message for m in response.context["messages"]] == [
        "validate: Base cannot be removed while these packages depend on it: Top:1.0.0"
    ]
    assert ExtensionPackage.objects.filter(name="Base").exists()
    assert node_storage.chk_path("Base").exists()


@pytest.mark.django_db
def test_it_does_not_offer_the_bulk_delete_that_would_bypass_the_removal(client, superuser, imported):
    imported("Alpha")
    client.force_login(superuser)

    page = client.get(_url(ExtensionPackage, "changelist")).content.decode()

    assert "delete_selected" not in page
    assert "remove_packages" in page


@pytest.mark.django_db
def test_it_refuses_a_delete_to_staff_without_the_permission(client, node_storage, imported):
    package = imported("Alpha")
    staff = User.objects.create_user("viewer", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_extensionpackage"))
    client.force_login(staff)

    assert client.get(_url(ExtensionPackage, "changelist")).status_code == 200
    assert client.post(_url(ExtensionPackage, "delete", package.pk), {"post": "yes"}).status_code == 403
    assert node_storage.package_dir("Alpha").is_dir()


@pytest.mark.django_db
def test_it_requires_login(client):
    response = client.get(_url(ExtensionPackage, "changelist"))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


@pytest.mark.django_db
def test_it_confirms_a_package_delete_without_loading_its_archive(client, superuser, node_storage, pkgdir):
    """The confirmation lists what goes; it must not read the archive's chunks (the zip) into memory."""
    import tracemalloc

    from tests.extadmin.conftest import MiB, import_path, stored_package

    (result,) = import_path(stored_package(pkgdir / "Big.zip", "Big", 30 * MiB))
    client.force_login(superuser)

    tracemalloc.start()
    try:
        page = client.get(_url(ExtensionPackage, "delete", result.package.pk))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert page.status_code == 200
    assert peak < 10 * MiB, f"the confirmation page peaked at {peak / MiB:.0f} MiB"
    text = page.content.decode()
    assert "Big:1.0.0" in text
