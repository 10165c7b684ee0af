"""The console's views: access for every view, upload, delete, the pages, and the dashboard's cost."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from extadmin.models import Archive, ExtensionPackage, Operation
from extadmin.operations import Actor
from extadmin.storage import NodeStorage
from nodes.models import ClusterSettings, Node, SyncRun, SyncState
from nodes.presenters import Dashboard, dashboard, format_duration
from nodes.selectors import cluster_snapshot, ids_of
from tests.packages import build_package
from tests.web.cluster import seed_cluster

pytestmark = pytest.mark.django_db

Imported = Callable[..., ExtensionPackage]


def upload(client: Client, *paths: Path, action: str = "import", **headers: str):  # type: ignore[no-untyped-def]
    files = [SimpleUploadedFile(p.name, p.read_bytes(), content_type="application/zip") for p in paths]
    return client.post(reverse("package-upload"), {"file": files, "action": action}, **headers)


def nothing_written(storage: NodeStorage) -> bool:
    extensions = storage.root / "extensions"
    return (
        not ExtensionPackage.objects.exists()
        and not Archive.objects.exists()
        and not SyncState.objects.exists()
        and (not extensions.exists() or not any(extensions.iterdir()))
    )


# --- access -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["/", "/extensions/upload/", "/extensions/Any/", "/extensions/Any/delete/", "/nodes/", "/nodes/web/"],
)
def test_it_redirects_anonymous_users_to_login(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"/accounts/login/?next={url}")


def test_it_redirects_an_anonymous_upload_post_to_login(client: Client, pkgdir: Path) -> None:
    response = upload(client, build_package(pkgdir, "Anon"))
    assert response.status_code == 302
    assert not ExtensionPackage.objects.exists()


def test_it_shows_the_login_page(client: Client) -> None:
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b'name="username"' in response.content and b"csrfmiddlewaretoken" in response.content


def test_it_logs_in_and_out(client: Client, viewer: User) -> None:
    response = client.post("/accounts/login/", {"username": "viewer", "password": "pw-viewer-1"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.get("/accounts/logout/").status_code == 405  # logging out changes state: POST only
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_it_refuses_the_upload_form_without_permission(viewer_client: Client) -> None:
    assert viewer_client.get(reverse("package-upload")).status_code == 403


def test_it_refuses_an_upload_without_permission(
    viewer_client: Client, pkgdir: Path, node_storage: NodeStorage
) -> None:
    response = upload(viewer_client, build_package(pkgdir, "Nope"))
    assert response.status_code == 403
    assert nothing_written(node_storage)


def test_it_refuses_the_delete_form_and_the_delete_without_permission(
    viewer_client: Client, imported: Imported
) -> None:
    imported("Kept")
    assert viewer_client.get(reverse("package-delete", args=["Kept"])).status_code == 403
    assert viewer_client.post(reverse("package-delete", args=["Kept"])).status_code == 403
    assert ExtensionPackage.objects.filter(name="Kept").exists()


def test_it_shows_read_only_pages_without_actions(viewer_client: Client, imported: Imported) -> None:
    imported("Readable")
    dashboard = viewer_client.get("/")
    page = viewer_client.get(reverse("package", args=["Readable"]))
    node = viewer_client.get(reverse("node", args=["web"]))
    assert dashboard.status_code == page.status_code == node.status_code == 200
    assert reverse("package-upload").encode() not in dashboard.content
    assert reverse("package-delete", args=["Readable"]).encode() not in page.content


def test_it_protects_state_changes_with_csrf(operator: User, pkgdir: Path, node_storage: NodeStorage) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert upload(client, build_package(pkgdir, "Forged")).status_code == 403
    assert nothing_written(node_storage)


def test_it_sets_the_csrf_header_for_htmx_once_on_body(viewer_client: Client) -> None:
    html = viewer_client.get("/").content.decode()
    assert html.count('hx-headers=\'{"X-CSRFToken": "') == 1
    assert "<body hx-headers=" in html
    assert "django_htmx/htmx" in html and "unpkg" not in html and "cdn" not in html.lower()


# --- upload -------------------------------------------------------------------------------------


def test_it_imports_an_upload_and_redirects_to_the_package_page(
    operator_client: Client, pkgdir: Path, node_storage: NodeStorage
) -> None:
    response = upload(operator_client, build_package(pkgdir, "Widgets", "1.2.3"), REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 302
    assert response["Location"] == reverse("package", args=["Widgets"])
    package = ExtensionPackage.objects.get(name="Widgets")
    assert package.version == "1.2.3" and package.imported_by.username == "operator"
    op = Operation.objects.get(package_name="Widgets")
    assert (op.username, op.remote_addr, op.via, op.outcome) == ("operator", "10.1.2.3", "browser", "succeeded")
    assert (node_storage.root / "extensions" / "Widgets" / "Widgets.chk").read_text().strip() == package.sha256


def test_it_answers_an_htmx_upload_with_hx_redirect(
    operator_client: Client, pkgdir: Path, node_storage: NodeStorage
) -> None:
    response = upload(operator_client, build_package(pkgdir, "Htmx"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("package", args=["Htmx"])


def test_it_imports_several_files_as_one_operation(
    operator_client: Client, pkgdir: Path, node_storage: NodeStorage
) -> None:
    base = build_package(pkgdir, "Base")
    top = build_package(pkgdir, "Top", depends_on="Base:1.0.0")
    response = upload(operator_client, top, base)
    assert response.status_code == 302
    # Several files: every file's outcome on the upload page (tests/web/test_upload_summary.py),
    # not the last package's page.
    assert response["Location"] == reverse("package-upload")
    assert set(ExtensionPackage.objects.values_list("name", flat=True)) == {"Base", "Top"}


def test_it_imports_none_of_several_files_when_one_is_refused(
    operator_client: Client, pkgdir: Path, node_storage: NodeStorage
) -> None:
    good = build_package(pkgdir, "Good")
    bad = build_package(pkgdir, "Bad", depends_on="Missing:1.0.0")
    response = upload(operator_client, good, bad)
    assert response.status_code == 400
    assert "Missing:1.0.0, which is not installed" in response.content.decode()
    assert nothing_written(node_storage)


def test_it_shows_a_refusal_inline_with_its_step_and_reason(
    operator_client: Client, pkgdir: Path, node_storage: NodeStorage
) -> None:
    hostile = build_package(pkgdir, "Hostile", files={"../evil.txt": b"pwned"})
    response = upload(operator_client, hostile)
    assert response.status_code == 400
    html = response.content.decode()
    assert "<strong>validate</strong>: entry &#x27;../evil.txt&#x27; escapes the package folder" in html
    assert 'id="upload-form"' in html  # the form is there to try again
    assert nothing_written(node_storage)
    op = Operation.objects.filter(package_name="Hostile").first()
    assert op is None  # refused at validation: not even an operation started


def test_it_returns_only_the_result_to_an_htmx_refusal(
    operator_client: Client, pkgdir: Path, node_storage: NodeStorage
) -> None:
    response = upload(operator_client, _not_a_zip(pkgdir), HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    html = response.content.decode()
    assert "<html" not in html
    assert "<strong>validate</strong>: the package is not a zip archive, or it is truncated" in html


def _not_a_zip(folder: Path) -> Path:
    path = folder / "notes.zip"
    path.write_bytes(b"this is not a zip")
    return path


def test_it_answers_413_when_the_upload_is_too_large(
    operator_client: Client, pkgdir: Path, node_storage: NodeStorage, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_MAX_UPLOAD_BYTES = 2048
    response = upload(operator_client, build_package(pkgdir, "Huge"))
    assert response.status_code == 413
    assert "<strong>upload</strong>: the upload is larger than the limit of 2.0\xa0KB" in response.content.decode()
    assert nothing_written(node_storage)


def test_it_answers_413_when_the_declared_length_is_already_too_large(
    operator_client: Client, pkgdir: Path, node_storage: NodeStorage, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_MAX_UPLOAD_BYTES = 1024  # the package is far more than 64 KiB over it
    package = build_package(pkgdir, "Bulky", files={"lib/bulky.jar": os.urandom(200 * 1024)})
    response = upload(operator_client, package)
    assert response.status_code == 413
    assert "<strong>upload</strong>: the upload is larger than the limit of" in response.content.decode()
    assert nothing_written(node_storage)


def _csrf_client_and_bulky_package(operator: User, pkgdir: Path) -> tuple[Client, Path]:
    """A client that enforces CSRF (with its cookie set) and a package far over a 1 KiB limit."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    client.get(reverse("package-upload"))
    return client, build_package(pkgdir, "Bulky", files={"lib/bulky.jar": os.urandom(200 * 1024)})


def test_it_answers_413_through_csrf_when_the_token_comes_in_the_header(
    operator: User, pkgdir: Path, node_storage: NodeStorage, settings
) -> None:  # type: ignore[no-untyped-def]
    """As the browser's htmx upload sends it: the body is never read, so the token must not be in it."""
    settings.EXTADMIN_MAX_UPLOAD_BYTES = 1024
    client, package = _csrf_client_and_bulky_package(operator, pkgdir)
    response = upload(client, package, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value, HTTP_HX_REQUEST="true")
    assert response.status_code == 413
    assert nothing_written(node_storage)


def test_it_answers_413_to_a_form_post_without_javascript(
    operator: User, pkgdir: Path, node_storage: NodeStorage, settings
) -> None:  # type: ignore[no-untyped-def]
    """A plain form sends its CSRF token as a field before the file: it is read, so the answer is 413, not 403."""
    settings.EXTADMIN_MAX_UPLOAD_BYTES = 1024
    client, package = _csrf_client_and_bulky_package(operator, pkgdir)
    data = {
        "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        "action": "import",
        "file": SimpleUploadedFile(package.name, package.read_bytes(), content_type="application/zip"),
    }
    response = client.post(reverse("package-upload"), data)
    assert response.status_code == 413
    assert nothing_written(node_storage)


def test_it_validates_only_and_changes_nothing(
    operator_client: Client, pkgdir: Path, node_storage: NodeStorage
) -> None:
    response = upload(operator_client, build_package(pkgdir, "Checked", "2.0.0"), action="validate")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<strong>Valid.</strong>" in html and "Checked" in html and "2.0.0" in html
    assert nothing_written(node_storage)
    assert not Operation.objects.exists()


def test_it_shows_a_validate_only_refusal(operator_client: Client, pkgdir: Path, node_storage: NodeStorage) -> None:
    response = upload(operator_client, build_package(pkgdir, "Lonely", depends_on="Nobody:1.0.0"), action="validate")
    assert response.status_code == 400
    assert (
        "<strong>validate</strong>: Lonely depends on Nobody:1.0.0, which is not installed" in response.content.decode()
    )


def test_it_asks_for_a_file(operator_client: Client) -> None:
    response = operator_client.post(reverse("package-upload"), {"action": "import"})
    assert response.status_code == 400
    assert "choose at least one package file" in response.content.decode()


def test_it_shows_the_upload_form_with_drop_zone_progress_and_validate_only(operator_client: Client) -> None:
    html = operator_client.get(reverse("package-upload")).content.decode()
    assert 'type="file" name="file"' in html and "multiple" in html
    assert 'id="dropzone"' in html and "<progress" in html
    assert 'value="validate"' in html and 'enctype="multipart/form-data"' in html


def test_it_carries_warnings_to_the_package_page(
    operator_client: Client, pkgdir: Path, node_storage: NodeStorage
) -> None:
    response = upload(operator_client, build_package(pkgdir, "Unsure", ha_compatible=None))
    page = operator_client.get(response["Location"])
    assert "does not say it is safe for clusters" in page.content.decode()


# --- package page -------------------------------------------------------------------------------


def test_it_escapes_markup_in_metadata(viewer_client: Client, imported: Imported) -> None:
    imported("Marked", description='<script>alert("x")</script><b>bold</b>')
    html = viewer_client.get(reverse("package", args=["Marked"])).content.decode()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<script>alert" not in html and "<b>bold</b>" not in html


def test_it_escapes_markup_in_the_vendor_on_every_page(
    viewer_client: Client, node_storage: NodeStorage, pkgdir: Path
) -> None:
    from extadmin.services import package_import_file
    from tests.packages import metadata_xml

    xml = metadata_xml("Vendored", vendor="<img src=x onerror=alert(1)>")
    package_import_file(path=build_package(pkgdir, "Vendored", metadata=xml), actor=Actor())
    for url in ["/", reverse("package", args=["Vendored"]), reverse("node", args=["web"])]:
        assert "<img src=x" not in viewer_client.get(url).content.decode()


def test_it_shows_the_package_page(viewer_client: Client, imported: Imported) -> None:
    imported("Base")
    imported("Top", depends_on="Base:1.0.0")
    html = viewer_client.get(reverse("package", args=["Base"])).content.decode()
    package = ExtensionPackage.objects.get(name="Base")
    assert package.sha256 in html
    assert "Thing" in html and "BaseThing" in html  # entities grouped by type
    assert 'href="/extensions/Top/"' in html  # dependents
    assert "checksum" in html and "unzip" in html and "persist" in html and "archive" in html  # steps
    assert "via browser" in html
    assert '<ol class="timeline"' in html
    top = viewer_client.get(reverse("package", args=["Top"])).content.decode()
    assert 'href="/extensions/Base/"' in top and "(1.0.0 installed)" in top


def test_it_returns_only_the_live_part_of_the_package_page_to_htmx(viewer_client: Client, imported: Imported) -> None:
    imported("Live")
    html = viewer_client.get(reverse("package", args=["Live"]), HTTP_HX_REQUEST="true").content.decode()
    assert 'id="package-live"' in html and "<html" not in html


def test_it_answers_404_for_an_unknown_package_or_node(viewer_client: Client) -> None:
    assert viewer_client.get(reverse("package", args=["Nothing"])).status_code == 404
    assert viewer_client.get(reverse("node", args=["nowhere"])).status_code == 404


# --- delete ---------------------------------------------------------------------------------------


def test_it_deletes_after_confirmation(operator_client: Client, imported: Imported, node_storage: NodeStorage) -> None:
    imported("Gone")
    confirm = operator_client.get(reverse("package-delete", args=["Gone"]))
    assert (
        confirm.status_code == 200 and b"Delete Gone" in confirm.content and b"csrfmiddlewaretoken" in confirm.content
    )
    assert ExtensionPackage.objects.filter(name="Gone").exists()  # GET changes nothing
    response = operator_client.post(reverse("package-delete", args=["Gone"]), REMOTE_ADDR="10.9.8.7")
    assert response.status_code == 302 and response["Location"] == reverse("package", args=["Gone"])
    assert not ExtensionPackage.objects.filter(name="Gone").exists()
    assert not (node_storage.root / "extensions" / "Gone").exists()
    history = operator_client.get(response["Location"]).content.decode()
    assert "removed" in history and "10.9.8.7" in history and "undeploy" in history


def test_it_refuses_to_delete_a_package_others_depend_on(operator_client: Client, imported: Imported) -> None:
    imported("Base")
    imported("Top", depends_on="Base:1.0.0")
    response = operator_client.post(reverse("package-delete", args=["Base"]))
    assert response.status_code == 409
    assert (
        "<strong>validate</strong>: Base cannot be removed while these packages depend on it: Top:1.0.0"
        in response.content.decode()
    )
    assert ExtensionPackage.objects.filter(name="Base").exists()


def test_it_answers_404_when_deleting_an_unknown_package(operator_client: Client) -> None:
    assert operator_client.post(reverse("package-delete", args=["Ghost"])).status_code == 404


# --- dashboard ------------------------------------------------------------------------------------


def _dashboard_queries(client: Client, **headers: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get("/", **headers).status_code == 200
    return len(ctx.captured_queries)


def test_it_keeps_the_dashboard_query_count_constant(viewer_client: Client, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    seed_cluster(2, 2)
    partial = _dashboard_queries(viewer_client, HTTP_HX_REQUEST="true")
    page = _dashboard_queries(viewer_client)
    ExtensionPackage.objects.all().delete()
    Node.objects.all().delete()
    SyncState.objects.all().delete()
    seed_cluster(20, 20)
    with django_assert_num_queries(partial):
        viewer_client.get("/", HTTP_HX_REQUEST="true")
    with django_assert_num_queries(page):
        viewer_client.get("/")
    # session and user, the change token's four (nodes.changes: states, packages, nodes, cluster
    # settings; the live part's ETag), then the grid's four: packages, nodes, states, cluster settings;
    # and the user's permissions (user and group), asked once for the cells' actions (retry…, forget node…)
    assert partial == 12
    # the menu's permissions are those already asked; the sync banner and the pause form read the
    # cluster's switch once; its rollouts' progress, one query
    assert page == partial + 2


def test_it_renders_100_nodes_by_300_packages_compactly(viewer_client: Client) -> None:
    """Speed is measured by bench/run.py (dashboard_ms); here: the shape that keeps it fast."""
    seed_cluster(100, 300)
    response = viewer_client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "grid compact" in html  # a summary per package and only the cells not converged
    # Only the packages not converged (the default above 40 nodes), 50 a page.
    assert html.count('<tr class="') == 50
    assert "page 1 of " in html
    assert html.count('class="chip s-') <= 300 * 8
    assert "more</a>" in html  # the rest is one click away, on the package page


def test_it_shows_every_state_in_the_grid(viewer_client: Client, imported: Imported) -> None:
    package = imported("States")
    now = timezone.now()
    web = Node.objects.get(name="web")
    Node.objects.filter(pk=web.pk).update(last_heartbeat=now)
    specs = {
        "n-pending": None,
        "n-syncing": SyncState.State.SYNCING,
        "n-failed": SyncState.State.FAILED,
        "n-removing": SyncState.State.REMOVING,
    }
    for name, state in specs.items():
        node = Node.objects.create(name=name, last_heartbeat=now)
        if state:
            SyncState.objects.create(
                node=node,
                package_name="States",
                state=state,
                changed_at=now,
                error="checksum mismatch" if state == "failed" else "",
            )
    Node.objects.create(name="n-offline", last_heartbeat=now - timedelta(hours=1))
    html = viewer_client.get("/").content.decode()
    cell = 'data-package="States" data-node="{}" data-state="{}"'
    assert cell.format("web", "installed") in html
    assert package.sha256[:10] in html and "1.0.0" in html
    for name, state in [
        ("n-pending", "pending"),
        ("n-syncing", "syncing"),
        ("n-failed", "failed"),
        ("n-removing", "removing"),
        ("n-offline", "offline"),
    ]:
        assert cell.format(name, state) in html
    assert "checksum mismatch" in html
    assert "1/5 online, 1 offline" in html
    assert 'class="node offline" data-node="n-offline"' in html


def test_it_counts_a_node_converged_only_when_online_with_the_checksum(imported: Imported) -> None:
    package = imported("Proven")
    now = timezone.now()
    stale = Node.objects.create(name="stale", last_heartbeat=now)
    SyncState.objects.create(
        node=stale,
        package_name="Proven",
        state="installed",
        installed_version="1.0.0",
        installed_sha256="0" * 64,
        changed_at=now,
    )
    away = Node.objects.create(name="away", last_heartbeat=now - timedelta(hours=1))
    SyncState.objects.create(
        node=away,
        package_name="Proven",
        state="installed",
        installed_version="1.0.0",
        installed_sha256=package.sha256,
        changed_at=now,
    )
    Node.objects.filter(name="web").update(last_heartbeat=now)
    row = dashboard(cluster_snapshot()).rows[0]
    assert {c.node.name: c.converged for c in row.cells} == {"away": False, "stale": False, "web": True}
    labels = {c.node.name: c.label for c in row.cells}
    assert labels["stale"] == "pending (has 1.0.0)"
    assert labels["away"] == "offline (last reported installed)"  # never shown as installed
    assert (row.converged, row.total, row.offline, row.nodes_text) == (1, 3, 1, "1/2 online, 1 offline")
    assert (row.done, row.time_to_converge) == (False, "")


def test_it_returns_only_the_grid_to_htmx_polling(viewer_client: Client, imported: Imported) -> None:
    imported("Polled")
    html = viewer_client.get("/", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in html
    assert '<section id="grid" data-live-url="/" data-live-token="' in html  # live.js morphs it on a change


def test_it_shows_time_since_import_and_time_to_converge(viewer_client: Client, imported: Imported) -> None:
    imported("Quick")
    Node.objects.filter(name="web").update(last_heartbeat=timezone.now())
    html = viewer_client.get("/").content.decode()
    assert "1/1 online" in html
    row = html[html.index('href="/extensions/Quick/"') :]
    assert " ms</td>" in row or " s</td>" in row


def test_it_shows_removed_packages_still_held_by_a_node(viewer_client: Client) -> None:
    node = Node.objects.create(name="slow", last_heartbeat=timezone.now())
    SyncState.objects.create(node=node, package_name="Leaving", state="installed", changed_at=timezone.now())
    html = viewer_client.get("/").content.decode()
    assert 'data-package="Leaving" data-node="slow" data-state="removing"' in html


# --- node page ------------------------------------------------------------------------------------


def test_it_explains_why_a_node_is_not_converged(viewer_client: Client, imported: Imported, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_SYNC_INTERVAL = 30
    imported("Pend")
    imported("Fail")
    now = timezone.now()
    node = Node.objects.create(name="n2", last_heartbeat=now, storage_path="/srv/n2")
    SyncState.objects.create(node=node, package_name="Fail", state="failed", error="checksum mismatch", changed_at=now)
    run_at = now.replace(hour=14, minute=4, second=30, microsecond=0)
    SyncRun.objects.create(
        node=node,
        trigger="periodic",
        started_at=run_at,
        finished_at=run_at + timedelta(seconds=5),
        outcome="failed",
        error="Fail: checksum mismatch",
    )
    html = viewer_client.get(reverse("node", args=["n2"])).content.decode()
    assert "sync failed: checksum mismatch, retry at 14:05:05" in html
    assert "pending: not synced since the import at" in html
    assert "/srv/n2" in html and "Fail: checksum mismatch" in html

    Node.objects.filter(pk=node.pk).update(sync_lock_owner="n2:123", sync_lock_until=now + timedelta(minutes=5))
    SyncRun.objects.create(node=node, trigger="nudge", started_at=now.replace(hour=14, minute=1, second=0))
    html = viewer_client.get(reverse("node", args=["n2"])).content.decode()
    assert "waiting: another sync running since 14:01:00" in html

    ClusterSettings.objects.create(pk=1, sync_paused=True, paused_at=now)
    assert "paused: cluster syncing is paused" in viewer_client.get(reverse("node", args=["n2"])).content.decode()

    Node.objects.filter(pk=node.pk).update(last_heartbeat=now.replace(hour=14, minute=2, second=0) - timedelta(days=1))
    assert "offline since 14:02:00" in viewer_client.get(reverse("node", args=["n2"])).content.decode()


def test_it_says_nothing_is_wrong_on_a_converged_node(viewer_client: Client, imported: Imported) -> None:
    imported("Fine")
    Node.objects.filter(name="web").update(last_heartbeat=timezone.now())
    html = viewer_client.get(reverse("node", args=["web"])).content.decode()
    assert "✓ up to date" in html and "0 not converged" in html


def test_it_returns_only_the_live_part_of_the_node_page_to_htmx(viewer_client: Client, imported: Imported) -> None:
    imported("Any")
    html = viewer_client.get(reverse("node", args=["web"]), HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in html and 'id="node-live"' in html


def test_it_shows_which_nodes_still_hold_a_removed_package(operator_client: Client, imported: Imported) -> None:
    imported("Leaving")
    now = timezone.now()
    slow = Node.objects.create(name="slow", last_heartbeat=now)
    SyncState.objects.create(node=slow, package_name="Leaving", state="installed", changed_at=now)
    operator_client.post(reverse("package-delete", args=["Leaving"]))
    html = operator_client.get(reverse("package", args=["Leaving"])).content.decode()
    assert '<tr data-node="slow" data-state="removing">' in html
    assert 'id="package-live" class="card" data-live-url=' in html  # still live until every node has removed it
    node = operator_client.get(reverse("node", args=["slow"])).content.decode()
    assert "removing: the package was removed from the database; this node has not synced since" in node


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, ""),
        (0.25, "250 ms"),
        (4.25, "4.2 s"),
        (42, "42 s"),
        (185, "3 min 5 s"),
        (7800, "2 h 10 min"),
        (3 * 86400 + 4 * 3600, "3 d 4 h"),
    ],
)
def test_it_formats_durations_for_people(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def _seed_with_odd_packages(nodes: int, packages: int, *, offline: int) -> None:
    """``seed_cluster``, and a package no node holds, one being removed, one removed that a node still holds."""
    seed_cluster(nodes, packages, offline=offline)
    ExtensionPackage.objects.create(name="Nobody", version="1.0.0", sha256="e" * 64, size=1,
                                    imported_at=timezone.now(), imported_on_node="n000")
    ExtensionPackage.objects.filter(name="Pkg001").update(state="removing")
    SyncState.objects.create(node=Node.objects.get(name="n001"), package_name="Gone", state="installed",
                             installed_sha256="a" * 64, changed_at=timezone.now())


@pytest.mark.django_db
def test_it_counts_the_compact_views_cells_as_the_grid_does() -> None:
    """The compact view counts the cells that prove a package at once; its counts, selected cells
    and links are the grid's, and a package no node proves has no "0 installed"."""
    _seed_with_odd_packages(6, 24, offline=2)
    snapshot = cluster_snapshot()
    grid, compact = dashboard(snapshot, compact=False), dashboard(snapshot, compact=True)
    for full, short in zip(grid.rows, compact.rows, strict=True):
        assert (short.name, short.url, short.counts, short.converged, short.offline, short.matched) == (
            full.name, full.url, full.counts, full.converged, full.offline, full.matched)
        assert [c.node.name for c in short.cells] == [c.node.name for c in full.cells if not c.converged][:8]
    nobody = next(r for r in compact.rows if r.name == "Nobody")
    assert "installed" not in nobody.counts and nobody.url == reverse("package", args=["Nobody"])


def _shown(grid: Dashboard) -> list[tuple]:
    """Everything the compact view shows of a dashboard, cell by cell."""
    nodes = [(n.name, n.online, n.degraded) for n in grid.nodes]
    rows = [
        (r.name, r.state, r.counts, r.converged, r.offline, r.matched, r.shown_matched, r.hidden_matched,
         [(c.node.name, c.state, c.converged, c.outdated, c.reported, c.title, c.degraded) for c in r.cells])
        for r in grid.rows
    ]
    return [nodes, rows]


@pytest.mark.django_db
def test_a_lean_snapshot_shows_the_compact_view_cell_for_cell_as_the_whole_one_does(settings) -> None:  # type: ignore[no-untyped-def]
    """The compact default view reads only the rows it shows (``cluster_snapshot(lean=True)``): the
    cells of online nodes that prove an active package are only counted. Offline nodes that hold it,
    a removing package, a removed one still held, an older version, failures and degraded nodes
    must come out the same as from every row."""
    settings.EXTADMIN_DEGRADED_AFTER = 60  # the seeded imports are 5 to 35 minutes old: overdue
    _seed_with_odd_packages(8, 30, offline=3)
    whole, lean = cluster_snapshot(), cluster_snapshot(lean=True)
    assert lean.proved is not None and whole.proved is None
    assert sum(map(len, lean.states.values())) < sum(map(len, whole.states.values())) / 2
    assert _shown(dashboard(lean, compact=True)) == _shown(dashboard(whole, compact=True))
    assert any(n.degraded for n in dashboard(lean, compact=True).nodes)  # the degraded sentences were compared
    # The other views show the cells it did not read: it refuses to serve them.
    with pytest.raises(ValueError, match="lean snapshot"):
        dashboard(lean, compact=False)


def test_the_lean_snapshot_reads_ids_back_from_their_joined_text() -> None:
    assert ids_of("3") == {3} and ids_of("10,2,31") == {2, 10, 31}
