"""What only a browser shows of issue 13's small things and of keyboard use, in Debian's Chromium
against a real server: relative times counted on, the timeline across its card, the skip link and
a visible focus."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from extadmin.models import ExtensionPackage
from extadmin.operations import Actor
from extadmin.services import package_import_file
from extadmin.storage import NodeStorage
from nodes.models import Node, SyncState
from tests.packages import build_package

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def base(live_server, node_storage: NodeStorage, pkgdir: Path) -> str:  # type: ignore[no-untyped-def]
    package_import_file(path=build_package(pkgdir, "Clocked"), actor=Actor(via="browser"))
    User.objects.create_superuser("admin", password="pw-admin-1")
    return str(live_server.url)


@pytest.fixture
def page(browser: Browser, base: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    pg.goto(base + "/accounts/login/")
    pg.fill("#id_username", "admin")
    pg.fill("#id_password", "pw-admin-1")
    pg.click("button[type=submit]")
    pg.wait_for_url(base + "/")
    yield pg
    context.close()


def seconds_of(text: str) -> float:
    """``'1 min 7 s'`` → 67."""
    words = text.split()
    units = {"ms": 0.001, "s": 1, "min": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in zip(words[::2], words[1::2], strict=True))


def test_a_relative_time_stays_true_after_the_page_is_drawn(page: Page, base: str) -> None:
    ExtensionPackage.objects.filter(name="Clocked").update(imported_at=timezone.now() - timedelta(seconds=65))
    page.goto(base + "/extensions/Clocked/")
    ago = page.locator("dd time[data-since]")
    first = ago.inner_text()
    assert 64 <= seconds_of(first) <= 70, first
    page.wait_for_timeout(3_000)
    later = ago.inner_text()
    assert later != first
    at = datetime.fromisoformat(ago.get_attribute("datetime") or "")
    assert abs(seconds_of(later) - (timezone.now() - at).total_seconds()) <= 2, later


def test_the_timeline_uses_its_card_and_shows_every_bar(page: Page, base: str) -> None:
    package = ExtensionPackage.objects.get(name="Clocked")
    now = timezone.now()
    late = Node.objects.create(name="late", last_heartbeat=now, storage_path="/srv/late")
    SyncState.objects.create(node=late, package_name="Clocked", state="installed", installed_sha256=package.sha256,
                             changed_at=now, started_at=package.imported_at + timedelta(seconds=300),
                             finished_at=package.imported_at + timedelta(seconds=301))
    page.goto(base + "/extensions/Clocked/")
    chart = page.locator("ol.timeline")
    card = page.locator("#package-live")
    chart_box, card_box = chart.bounding_box(), card.bounding_box()
    assert chart_box and card_box
    assert chart_box["width"] >= 0.9 * (card_box["width"] - 2 * 19), (chart_box, card_box)
    bars = page.locator("ol.timeline .bar")
    expect(bars).to_have_count(2)
    for i in range(2):
        box = bars.nth(i).bounding_box()
        assert box and box["width"] >= 6 and box["height"] >= 10, box


def test_the_skip_link_comes_first_and_focus_is_visible(page: Page, base: str) -> None:
    page.goto(base + "/")
    page.keyboard.press("Tab")
    skip = page.locator("a.skip")
    expect(skip).to_be_focused()
    box = skip.bounding_box()
    assert box and box["y"] >= 0, "the focused skip link is on the screen"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()
    page.keyboard.press("Tab")  # the next stop is inside the content, not the header again
    assert page.evaluate("!!document.activeElement.closest('main')")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"


def test_a_change_in_the_counts_is_announced_politely(page: Page, base: str) -> None:
    """The dashboard's part is replaced by its refresh; the one live region outside it says what changed."""
    Node.objects.filter(name="web").update(last_heartbeat=timezone.now())
    page.goto(base + "/")
    live = page.locator("#live-announcer")
    expect(live).to_have_attribute("aria-live", "polite")
    expect(page.locator("#grid [data-announce]")).to_contain_text("1/1 nodes online")
    assert live.inner_text() == ""  # nothing said on arrival
    Node.objects.create(name="joined", last_heartbeat=timezone.now(), storage_path="/srv/joined")
    expect(live).to_contain_text("2/2 nodes online", timeout=15_000)
    expect(live).to_contain_text("packages converged")
    assert "updated" not in live.inner_text()
