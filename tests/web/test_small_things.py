"""The small things an operator saw on the console's pages (issue 13, item 6), each pinned down.

Real packages imported on node ``web`` (real files, the real database); pages read through Django's
test client. What only a browser shows (relative times counted on, the timeline's geometry) is in
tests/browser/test_small_things.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from extadmin.models import ExtensionPackage
from extadmin.operations import Actor
from extadmin.services import package_import_file
from extadmin.storage import NodeStorage
from nodes.models import Node, SyncRun, SyncState
from nodes.presenters import error_words, timeline
from nodes.selectors import package_state_rows
from tests.packages import build_package
from tests.processes import ROOT
from tests.web.console_pages import PAGES

pytestmark = pytest.mark.django_db

Imported = Callable[..., ExtensionPackage]
CSS = re.sub(r"/\*.*?\*/", "", (ROOT / "static" / "extadmin" / "console.css").read_text(), flags=re.S)


class VisibleText(HTMLParser):
    """The text a person reads on a page: no scripts, styles or attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)

    @classmethod
    def of(cls, html: str) -> str:
        parser = cls()
        parser.feed(html)
        return " ".join(" ".join(parser.parts).split())


def text(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return VisibleText.of(response.content.decode())


# --- "536 bytes (536 bytes)" ----------------------------------------------------------------------


def test_a_small_package_says_its_size_once(viewer_client: Client, node_storage: NodeStorage, pkgdir: Path) -> None:
    path = build_package(pkgdir, "Tiny", files={})
    package_import_file(path=path, actor=Actor())
    size = ExtensionPackage.objects.get(name="Tiny").size
    assert size < 1024
    page = text(viewer_client, reverse("package", args=["Tiny"]))
    assert f"Size {size} bytes Imported" in page
    assert page.count(f"{size} bytes") == 1


def test_a_large_package_says_its_size_rounded_and_exact(viewer_client: Client, imported: Imported) -> None:
    size = imported("Large").size
    assert size >= 1024
    assert f"({size} bytes)" in text(viewer_client, reverse("package", args=["Large"]))


# --- the raw dependsOn label ---------------------------------------------------------------------


def test_the_package_page_says_depends_on_in_words(viewer_client: Client, imported: Imported) -> None:
    imported("Base")
    imported("Top", depends_on="Base:1.0.0")
    page = text(viewer_client, reverse("package", args=["Top"]))
    assert "Depends on Base:1.0.0" in page
    assert "dependsOn" not in page


# --- one dash --------------------------------------------------------------------------------------


def test_every_page_uses_one_dash(admin_client: Client, cluster: None) -> None:
    """The em dash "—" for a missing value and between clauses; no en dash, no spaced hyphen."""
    for url in PAGES:
        page = text(admin_client, url)
        assert "–" not in page, f"{url}: an en dash in {page[max(page.index('–') - 60, 0):page.index('–') + 20]!r}"
        assert " - " not in page, f"{url}: a spaced hyphen used as a dash"
    js = (ROOT / "static" / "extadmin" / "console.js").read_text()
    assert "–" not in js


def test_the_entity_pager_says_its_range_in_words(viewer_client: Client, node_storage: NodeStorage,
                                                  pkgdir: Path) -> None:
    entities = "".join(f'<Things><Thing name="T{i:03d}"/></Things>' for i in range(130))
    from tests.packages import metadata_xml

    package_import_file(path=build_package(pkgdir, "Many", metadata=metadata_xml("Many", entities=entities)),
                        actor=Actor())
    page = text(viewer_client, reverse("package", args=["Many"]))
    assert "entities 1 to 100, page 1 of 2" in page


# --- reimport vs re-import -----------------------------------------------------------------------


def test_validating_a_package_already_there_says_re_import(operator_client: Client, node_storage: NodeStorage,
                                                           pkgdir: Path) -> None:
    path = build_package(pkgdir, "Again")
    package_import_file(path=path, actor=Actor())
    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/zip")
    response = operator_client.post(reverse("package-upload"), {"file": [upload], "action": "validate"})
    page = VisibleText.of(response.content.decode())
    assert "Again 1.0.0 re-import" in page
    assert "reimport" not in page


def test_every_page_spells_re_import_one_way(admin_client: Client, cluster: None, node_storage: NodeStorage,
                                             pkgdir: Path) -> None:
    package_import_file(path=build_package(pkgdir, "Base", "1.2.0"), actor=Actor())  # the same bytes again
    for url in PAGES:
        page = text(admin_client, url).lower()
        assert "reimport" not in page, url
    assert "re-import" in text(admin_client, "/extensions/Base/")


# --- one time zone, shown ------------------------------------------------------------------------

# A time of day: 14:02 or 14:02:31, with a zone after it or not.
CLOCK = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\b(?!:)")
ZONE = re.compile(r"\s?(?:[A-Z]{2,5}|[+-]\d{2}(?::?\d{2})?)\b")


ADMIN_PAGES = ["/admin/extadmin/extensionpackage/", "/admin/extadmin/operation/", "/admin/nodes/node/",
               "/admin/nodes/syncstate/", "/admin/nodes/syncrun/"]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
def test_every_time_on_every_page_says_its_zone(admin_client: Client, cluster: None, settings, zone: str) -> None:  # type: ignore[no-untyped-def]
    settings.TIME_ZONE = zone
    zone_name = "UTC" if zone == "UTC" else "IST"
    seen = 0
    for url in PAGES + ADMIN_PAGES:
        page = text(admin_client, url)
        for m in CLOCK.finditer(page):
            seen += 1
            after = ZONE.match(page, m.end())
            context = page[max(m.start() - 40, 0):m.end() + 20]
            assert after is not None, f"{url}: a time without its zone: {context!r}"
            assert after.group().strip() == zone_name, f"{url}: a time in another zone: {context!r}"
    assert seen > 10  # the pages did show times


# --- relative times stay true --------------------------------------------------------------------


def test_relative_times_carry_their_moment_for_the_browser(admin_client: Client, cluster: None) -> None:
    """Every "… ago" is a <time datetime> that console.js counts on; no frozen "(0 minutes ago)"."""
    imported_at = ExtensionPackage.objects.get(name="Base").imported_at
    Node.objects.filter(name="web").update(last_heartbeat=timezone.now() - timedelta(seconds=2))
    for url in ["/extensions/Base/", "/nodes/web/", "/"]:
        html = admin_client.get(url).content.decode()
        assert "minutes ago" not in html and "0 minutes" not in html
        assert re.search(r'<time datetime="[^"]+" data-since title="[^"]+">[^<]+</time>', html), url
    html = admin_client.get("/extensions/Base/").content.decode()
    iso = timezone.localtime(imported_at).isoformat(timespec="milliseconds")
    assert f'<time datetime="{iso}" data-since' in html
    assert 'data-now="' in html


# --- case-insensitive sort -----------------------------------------------------------------------


def test_every_list_sorts_names_case_insensitively(admin_client: Client, imported: Imported) -> None:
    for name in ["beta", "Alpha", "charlie", "Delta"]:
        imported(name)
    now = timezone.now()
    for name in ["node-b", "Node-A", "node-c"]:
        Node.objects.create(name=name, last_heartbeat=now, storage_path=f"/srv/{name}")

    def order(html: str, names: list[str]) -> list[str]:
        return sorted(names, key=lambda n: html.index(f">{n}<"))

    packages = ["Alpha", "beta", "charlie", "Delta"]
    nodes = ["Node-A", "node-b", "node-c", "web"]
    for url in ["/", "/nodes/web/"]:
        assert order(admin_client.get(url).content.decode(), packages) == packages, url
    assert order(admin_client.get("/").content.decode(), nodes) == nodes
    assert order(admin_client.get("/nodes/").content.decode(), nodes) == nodes


# --- a favicon -----------------------------------------------------------------------------------


def test_every_page_links_a_favicon_that_is_served(admin_client: Client, client: Client) -> None:
    html = admin_client.get("/").content.decode()
    link = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', html)
    assert link is not None
    assert link.group(1) in client.get("/accounts/login/").content.decode()
    response = client.get(link.group(1))
    assert response.status_code == 200
    assert b"<svg" in b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert client.get("/favicon.ico").status_code in (301, 302)
    assert client.get("/favicon.ico")["Location"] == link.group(1)


# --- each state its own badge --------------------------------------------------------------------


def _rule(selector: str) -> str:
    """The declarations of the rule whose selector list names ``.selector`` (at the top level)."""
    for m in re.finditer(r"([^{}]+)\{([^{}]*)\}", CSS):
        selectors = [s.strip() for s in m.group(1).split(",")]
        if selector in selectors:
            return " ".join(m.group(2).split())
    raise AssertionError(f"console.css has no rule for {selector}")


def test_each_state_has_its_own_badge_style() -> None:
    states = ["installed", "pending", "syncing", "failed", "removing", "removed", "offline", "degraded"]
    styles = {s: _rule(f".s-{s}") for s in states}
    for a in states:
        for b in states:
            if a < b:
                assert styles[a] != styles[b], f".s-{a} and .s-{b} look the same: {styles[a]}"


def test_a_removed_package_is_badged_removed_not_removing(admin_client: Client, cluster: None) -> None:
    html = admin_client.get("/").content.decode()
    assert '<span class="badge s-removed">removed</span>' in html
    assert '<span class="badge s-removing">removed</span>' not in html


# --- the timeline ---------------------------------------------------------------------------------


def test_the_timeline_spans_the_card_with_visible_bars(viewer_client: Client, imported: Imported) -> None:
    package = imported("Wide")
    now = timezone.now()
    slow = Node.objects.create(name="slow", last_heartbeat=now, storage_path="/srv/slow")
    SyncState.objects.create(node=slow, package_name="Wide", state="installed", installed_sha256=package.sha256,
                             changed_at=now, started_at=package.imported_at + timedelta(seconds=590),
                             finished_at=package.imported_at + timedelta(seconds=600))
    from nodes.presenters import package_cells
    from nodes.selectors import node_rows

    cells = package_cells(nodes=node_rows(), package=(package.sha256, "active"),
                          states=package_state_rows(name="Wide"))
    chart = timeline(imported_at=package.imported_at, cells=cells, now=now)
    bars = {b.node: b for b in chart.bars}
    # web synced for a moment at the start: a bar of at least 1% of the width, not a hairline.
    assert bars["web"].width_pct >= 1.0 and bars["web"].left_pct < 1.0
    assert bars["slow"].left_pct > 95.0 and bars["slow"].left_pct + bars["slow"].width_pct <= 100.0
    html = viewer_client.get(reverse("package", args=["Wide"])).content.decode()
    assert '<ol class="timeline"' in html and "<svg" not in html
    assert f'left: {bars["slow"].left_pct}%; width: {bars["slow"].width_pct}%' in html


# --- no delete button where the delete can only be refused ---------------------------------------


def test_a_package_with_dependents_says_why_it_cannot_be_deleted(operator_client: Client, imported: Imported) -> None:
    imported("Base")
    imported("Top", depends_on="Base:1.0.0")
    html = operator_client.get(reverse("package", args=["Base"])).content.decode()
    assert reverse("package-delete", args=["Base"]) not in html
    assert "Cannot be removed while Top depends on it." in VisibleText.of(html)
    page = operator_client.get(reverse("package-delete", args=["Base"])).content.decode()
    assert 'type="submit" class="danger"' not in page
    assert "Base cannot be removed while these packages depend on it" in page
    # Top has no dependents: its button is there.
    top = operator_client.get(reverse("package", args=["Top"])).content.decode()
    assert reverse("package-delete", args=["Top"]) in top


# --- OS errors said in words ---------------------------------------------------------------------

ENOSPC = "unzip: [Errno 28] No space left on device: '/srv/n2/extensions/.staging-Base/lib/base-with-a-long-name.jar'"


def test_an_os_error_is_said_in_words_with_the_full_text_on_hover(admin_client: Client, imported: Imported) -> None:
    imported("Base")
    node = Node.objects.create(name="n2", last_heartbeat=timezone.now(), storage_path="/srv/n2")
    SyncState.objects.create(node=node, package_name="Base", state="failed", error=ENOSPC, changed_at=timezone.now())
    SyncRun.objects.create(node=node, trigger="periodic", started_at=timezone.now(), finished_at=timezone.now(),
                           outcome="failed", error=f"Base: {ENOSPC}; Other: checksum mismatch")
    full = ENOSPC.replace("'", "&#x27;")
    for url, words in [("/", "unzip: the disk is full"), ("/extensions/Base/", "unzip: the disk is full"),
                       ("/nodes/n2/", "Base: unzip: the disk is full; Other: checksum mismatch")]:
        html = admin_client.get(url).content.decode()
        assert re.search(f'title="[^"]*{re.escape(full)}[^"]*">{re.escape(words)}<', html), url
        assert "/srv/n2/extensions/.stag…" not in html and "lib/base-with" not in VisibleText.of(html), url
    assert "sync failed: unzip: the disk is full" in text(admin_client, "/nodes/n2/")


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (ENOSPC, "unzip: the disk is full"),
        ("disk full (/srv/n2/extensions/Base/lib/a.jar)", "the disk is full"),
        ("[Errno 13] Permission denied: '/srv/n2/extensions'", "permission denied on the node's storage"),
        ("swap: [Errno 30] Read-only file system: '/srv/n2'", "swap: the node's storage is read-only"),
        ("[Errno 39] Directory not empty: '/srv/n2/x'", "directory not empty"),
        ("fetch: the archive is incomplete (/var/tmp/Base.zip)", "fetch: the archive is incomplete"),
        ("checksum mismatch after download", "checksum mismatch after download"),
        (f"A: {ENOSPC}; B: [Errno 13] Permission denied: '/x'", "A: unzip: the disk is full; B: permission denied on "
         "the node's storage"),
        ("", ""),
    ],
)
def test_error_words(error: str, words: str) -> None:
    assert error_words(error) == words
