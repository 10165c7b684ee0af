"""Live updates and big clusters in Debian's headless Chromium, against a real running server and
real node agents: the page keeps its place (focus, a selection) across pushed updates, a node's
change reaches its cell in under a second, the fallback poll answers 304 while nothing changes,
and the not-converged filter on 100 × 300 shows only those."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from extadmin.models import ExtensionPackage
from extadmin.operations import Actor
from extadmin.services import package_import_file
from extadmin.storage import NodeStorage
from nodes.models import Node, SyncState
from nodes.services import node_get_or_register
from tests.browser.test_console import (  # noqa: F401 (fixtures: agents, page)
    Agents,
    agents,
    login,
    make_user,
    online,
    page,
    shot,
)
from tests.packages import build_package
from tests.processes import wait_for
from tests.web.cluster import converge_packages, seed_cluster

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

UPDATES = "window.extadminLive ? window.extadminLive.updates : -1"


def import_here(pkgdir: Path, name: str) -> ExtensionPackage:
    """Import a real package on the server's own node (``web``), as an upload does."""
    package_import_file(path=build_package(pkgdir, name, "1.0.0"), actor=Actor(via="browser"))
    return ExtensionPackage.objects.get(name=name)


def flip(node: Node, package: str, i: int) -> None:
    """What a node's report does to its row (the agent writes the same fields through sync_states)."""
    Node.objects.filter(pk=node.pk).update(last_heartbeat=timezone.now())
    SyncState.objects.update_or_create(
        node=node, package_name=package,
        defaults={"state": "failed" if i % 2 else "syncing", "error": f"attempt {i}" if i % 2 else "",
                  "changed_at": timezone.now()},
    )


def test_it_keeps_focus_and_a_selected_checksum_across_ten_live_updates(
    page: Page, live_server, agents: Agents, node_storage: NodeStorage, pkgdir: Path,  # noqa: F811
) -> None:
    base = live_server.url
    make_user("operator", can_change=True)
    agents.start("web")
    wait_for(lambda: online("web"), timeout=60, what="the web node's agent to come online")
    package = import_here(pkgdir, "KeepPlace")
    flipper = Node.objects.create(name="flipper", last_heartbeat=timezone.now())
    login(page, base, "operator", "pw-operator-1")
    web_cell = page.locator('td.cell[data-package="KeepPlace"][data-node="web"]')
    expect(web_cell).to_have_attribute("data-state", "installed", timeout=30_000)
    expect(page.locator("[data-live-status]")).to_have_text("live")
    page.evaluate("window.__sameDocument = true")

    link = page.locator('#grid th.pkg a[href="/extensions/KeepPlace/"]')
    link.focus()
    page.evaluate("""() => {
        const code = document.querySelector('td.cell[data-package="KeepPlace"][data-node="web"] code');
        const range = document.createRange();
        range.selectNodeContents(code);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
    }""")
    assert page.evaluate("window.getSelection().toString()") == package.sha256[:10]
    flipper_cell = page.locator('td.cell[data-package="KeepPlace"][data-node="flipper"]')
    for i in range(10):
        before = page.evaluate(UPDATES)
        flip(flipper, "KeepPlace", i)
        page.wait_for_function(f"{UPDATES} > {before}", timeout=10_000)
        expect(flipper_cell).to_have_attribute("data-state", "failed" if i % 2 else "syncing")
        assert page.evaluate("document.activeElement.getAttribute('href')") == "/extensions/KeepPlace/", i
        assert page.evaluate("window.getSelection().toString()") == package.sha256[:10], i
    assert page.evaluate(UPDATES) >= 10
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded instead of updating in place"
    expect(flipper_cell).to_contain_text("attempt 9")
    shot(page, "20-live-focus-kept")


def test_a_real_agents_change_reaches_its_cell_in_under_a_second(
    page: Page, live_server, agents: Agents, node_storage: NodeStorage, pkgdir: Path,  # noqa: F811
) -> None:
    """The figure itself (median of 20) is bench/live.py's ``live_latency_ms``."""
    base = live_server.url
    make_user("viewer", can_change=False)
    agents.start("web")
    wait_for(lambda: online("web"), timeout=60, what="the web node's agent to come online")
    import_here(pkgdir, "Quick")
    node_get_or_register(name="n2", storage=agents.storage("n2"))
    login(page, base, "viewer", "pw-viewer-1")
    cell = '#grid td.cell[data-package="Quick"][data-node="n2"]'
    expect(page.locator(cell)).to_have_attribute("data-state", "offline")
    # The page notes, frame by frame, when the cell first says installed (same clock as the agent's).
    page.evaluate("""(selector) => {
        window.__seenInstalled = null;
        const look = () => {
            const el = document.querySelector(selector);
            if (el && el.dataset.state === "installed") { window.__seenInstalled = Date.now(); return; }
            requestAnimationFrame(look);
        };
        look();
    }""", cell)
    agents.start("n2")
    page.wait_for_function("window.__seenInstalled !== null", timeout=90_000)
    seen_ms = page.evaluate("window.__seenInstalled")
    row = SyncState.objects.get(node__name="n2", package_name="Quick")
    assert row.state == "installed"
    latency_ms = seen_ms - row.changed_at.timestamp() * 1000
    assert -50 < latency_ms < 1000, f"the cell changed {latency_ms:.0f} ms after the agent's report"


@pytest.mark.parametrize("why", ["a proxy that buffers the stream", "too many streams open"])
def test_without_push_it_polls_with_304_while_nothing_changes(
    page: Page, live_server, node_storage: NodeStorage, pkgdir: Path, settings, why: str,  # noqa: F811
) -> None:
    base = live_server.url
    make_user("viewer", can_change=False)
    import_here(pkgdir, "Polled")
    other = Node.objects.create(name="other", last_heartbeat=timezone.now())
    if why == "too many streams open":
        settings.EXTADMIN_LIVE_STREAMS = 0
    else:  # the stream's request never answers, as behind a proxy that holds the whole body back
        page.route("**/live/events/**", lambda route: None)
    statuses: list[tuple[int, str]] = []  # the live part's answers: status, Content-Length
    page.on("response", lambda r: statuses.append((r.status, r.headers.get("content-length", "")))
            if r.url.rstrip("/") == base and r.request.headers.get("hx-request") else None)
    login(page, base, "viewer", "pw-viewer-1")
    expect(page.locator("[data-live-status]")).to_contain_text("updating every 2 s", timeout=15_000)
    page.wait_for_timeout(4500)
    assert statuses and all(status == 304 and size in ("", "0") for status, size in statuses), statuses
    flip(other, "Polled", 1)
    expect(page.locator('td.cell[data-package="Polled"][data-node="other"]')).to_have_attribute(
        "data-state", "failed", timeout=10_000
    )
    assert any(status == 200 for status, _ in statuses)


def test_it_filters_not_converged_on_100_nodes_by_300_packages(page: Page, live_server, settings) -> None:  # noqa: F811
    settings.EXTADMIN_HEARTBEAT_INTERVAL = 3600  # the seeded nodes stay online while the test runs
    base = live_server.url
    make_user("viewer", can_change=False)
    seed_cluster(100, 300)
    converged = [f"Pkg{j:03d}" for j in range(0, 300, 2)]
    converge_packages(converged)
    login(page, base, "viewer", "pw-viewer-1")
    page.goto(base + "/?state=all")
    expect(page.locator("#grid table.grid.compact tbody tr")).to_have_count(50)
    page.select_option("select[name=state]", "not_converged")
    page.fill("input[name=q]", "")
    page.click(".grid-filters button[type=submit]")
    expect(page).to_have_url(base + "/?q=&state=not_converged&sort=name&view=")
    shown: list[str] = []
    t0 = time.monotonic()
    while True:
        rows = page.locator("#grid tbody tr")
        expect(rows.first).to_be_visible()
        shown += [r.removeprefix("row-") for r in rows.evaluate_all("rs => rs.map(r => r.id)")]
        states = page.locator("#grid .open-cells a.chip").evaluate_all("cs => cs.map(c => c.dataset.state)")
        assert states and "installed" not in states
        following = page.locator('#grid a[rel="next"]')
        if not following.count():
            break
        following.click()
        assert time.monotonic() - t0 < 120
    assert sorted(shown) == [f"Pkg{j:03d}" for j in range(1, 300, 2)]
    page.goto(base + "/?state=failed&q=Pkg001")
    chips = page.locator("#grid .open-cells a.chip")
    expect(chips).to_have_count(SyncState.objects.filter(package_name="Pkg001", state="failed").count())
    assert set(chips.evaluate_all("cs => cs.map(c => c.dataset.state)")) == {"failed"}
    shot(page, "21-filter-failed")
