"""Every console page in Debian's headless Chromium, checked by axe-core at a desktop and a phone width.

axe-core comes bundled in ``axe-playwright-python`` (no network at test time). A page passes when axe
finds no violation of impact serious or critical, the document does not scroll sideways at 390 px
(a grid may scroll inside its own box), and the header keeps "Log out" on its dark bar.

The pages are data: a URL name, its arguments and whether it needs a login.

Marked ``rendering``: what axe and the layout judge is the HTML and CSS the console sends, the same
on every database, so CI runs these once (on SQLite); the pages' data is covered on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Browser, Page

from extadmin.models import ExtensionPackage
from extadmin.operations import Actor
from extadmin.removal import package_remove
from extadmin.services import package_import_file
from extadmin.storage import NodeStorage
from nodes.models import Node, SyncState
from nodes.presenters import COMPACT_ABOVE_NODES
from tests.packages import build_package
from tests.processes import ROOT
from tests.web.cluster import seed_cluster

pytestmark = [pytest.mark.browser, pytest.mark.rendering, pytest.mark.django_db(transaction=True)]

WIDTHS = (1280, 390)
SERIOUS = ("serious", "critical")

# (URL name, its arguments, logged in)
PAGES: list[tuple[str, tuple[str, ...], bool]] = [
    ("dashboard", (), True),
    ("package-upload", (), True),
    ("package", ("Consumer",), True),
    ("package", ("Gone",), True),
    ("package-delete", ("Base",), True),
    ("node", ("web",), True),
    ("node", ("n-failing",), True),
    ("nodes", (), True),
    ("node-forget", ("n-offline",), True),
    ("webhooks", (), True),
    ("operations", (), True),
    ("login", (), False),
]

AXE = Axe()
ARTIFACTS = ROOT / "test-artifacts"  # screenshots of every page at both widths, kept out of git


def seed(pkgdir: Path) -> None:
    """Real packages imported on node ``web``, one removed, and nodes in every state a cell can show."""
    actor = Actor(via="browser")
    package_import_file(path=build_package(pkgdir, "Base", "1.2.0", description="A base package."), actor=actor)
    package_import_file(path=build_package(pkgdir, "Consumer", "2.0.0", depends_on="Base:1.0.0"), actor=actor)
    package_import_file(path=build_package(pkgdir, "Gone", "0.9.0"), actor=actor)
    package_remove(name="Gone", actor=actor)
    now = timezone.now()
    failing = Node.objects.create(name="n-failing", storage_path="/srv/n-failing", host="h2", last_heartbeat=now)
    Node.objects.create(name="n-offline", storage_path="/srv/n-offline", host="h3",
                        last_heartbeat=now - timedelta(hours=2))
    Node.objects.create(name="n-syncing-with-a-long-name", storage_path="/srv/n-syncing", host="h4",
                        last_heartbeat=now)
    base = ExtensionPackage.objects.get(name="Base")
    SyncState.objects.create(
        node=failing, package_name="Base", desired_version=base.version, desired_sha256=base.sha256,
        state=SyncState.State.FAILED, changed_at=now, started_at=now - timedelta(seconds=3), finished_at=now,
        error="unzip: [Errno 28] No space left on device: '/srv/n-failing/extensions/.staging-Base/lib/base.jar'",
    )


@pytest.fixture
def console(live_server, node_storage: NodeStorage, pkgdir: Path) -> str:  # type: ignore[no-untyped-def]
    seed(pkgdir)
    User.objects.create_superuser("admin", password="pw-admin-1")
    return str(live_server.url)


@pytest.fixture
def pages(browser: Browser, console: str) -> Iterator[dict[tuple[int, bool], Page]]:
    """A page per width, logged in or not."""
    contexts, out = [], {}
    for width in WIDTHS:
        for logged_in in (True, False):
            context = browser.new_context(viewport={"width": width, "height": 900})
            contexts.append(context)
            page = context.new_page()
            page.set_default_timeout(20_000)
            if logged_in:
                page.goto(console + reverse("login"))
                page.fill("#id_username", "admin")
                page.fill("#id_password", "pw-admin-1")
                page.click("button[type=submit]")
                page.wait_for_url(console + "/")
            out[(width, logged_in)] = page
    yield out
    for context in contexts:
        context.close()


def serious(results: dict[str, Any]) -> list[str]:
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + "; ".join(" ".join(n["target"]) + " — " + n.get("failureSummary", "").replace("\n", " ") for n in v["nodes"])
        for v in results["violations"]
        if v["impact"] in SERIOUS
    ]


def check(page: Page, url: str, width: int) -> list[str]:
    response = page.goto(url)
    assert response is not None and response.status < 400, f"{url} answered {response and response.status}"
    page.wait_for_load_state("load")
    ARTIFACTS.mkdir(exist_ok=True)
    name = url.split("/", 3)[-1].strip("/").replace("/", "_") or "dashboard"
    page.screenshot(path=str(ARTIFACTS / f"a11y-{name}-{width}.png"), full_page=True)
    problems = [f"{width} px: {v}" for v in serious(AXE.run(page).response)]
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if scroll > inner:
        wide = page.evaluate(
            # Outside a scroll box first; then any inside one that escapes it (an absolutely placed child).
            """() => [...document.querySelectorAll('body *')]
                 .filter(e => e.getBoundingClientRect().right > window.innerWidth)
                 .sort((a, b) => !!a.closest('.scroll, .hscroll') - !!b.closest('.scroll, .hscroll'))
                 .slice(0, 8).map(e => e.tagName + '.' + e.className)"""
        )
        problems.append(f"{width} px: the page scrolls sideways ({scroll} > {inner}): {wide}")
    bar = page.locator("header.top").bounding_box()
    logout = page.locator("header.top button", has_text="Log out")
    if bar and logout.count():
        box = logout.bounding_box()
        assert box is not None
        if box["x"] < bar["x"] or box["x"] + box["width"] > bar["x"] + bar["width"] or \
                box["y"] < bar["y"] or box["y"] + box["height"] > bar["y"] + bar["height"]:
            problems.append(f"{width} px: 'Log out' falls off the header bar ({box} outside {bar})")
    return problems


@pytest.mark.parametrize(("name", "args", "logged_in"), PAGES, ids=[f"{n}{'-' if a else ''}{'-'.join(a)}"
                                                                      for n, a, _ in PAGES])
def test_every_page_has_no_serious_accessibility_violation_and_fits_a_phone(
    pages: dict[tuple[int, bool], Page], console: str, name: str, args: tuple[str, ...], logged_in: bool
) -> None:
    url = console + reverse(name, args=args)
    problems = [p for width in WIDTHS for p in check(pages[(width, logged_in)], url, width)]
    assert not problems, "\n".join(problems)


def test_the_compact_dashboard_of_a_large_cluster_passes_too(
    pages: dict[tuple[int, bool], Page], console: str
) -> None:
    """Past COMPACT_ABOVE_NODES nodes the dashboard is a summary with chips: checked the same way."""
    seed_cluster(COMPACT_ABOVE_NODES + 5, 6, offline=3)
    problems = [p for width in WIDTHS for p in check(pages[(width, True)], console + "/", width)]
    assert pages[(1280, True)].locator("table.grid.compact").count() == 1
    assert not problems, "\n".join(problems)


def test_the_upload_page_with_its_answers_passes_too(
    pages: dict[tuple[int, bool], Page], console: str, pkgdir: Path
) -> None:
    """A validated package's table and a refusal, as the page shows them after the answer."""
    good = build_package(pkgdir, "Checked", "3.0.0")
    bad = pkgdir / "broken.zip"
    bad.write_bytes(b"not a zip at all")
    for width in WIDTHS:
        page = pages[(width, True)]
        for path, shown in ((good, "#upload-result .ok"), (bad, "#upload-result .refusal")):
            page.goto(console + reverse("package-upload"))
            page.set_input_files("#id_file", str(path))
            page.click("button[value=validate]")
            page.wait_for_selector(shown)
            problems = [f"{width} px: {v}" for v in serious(AXE.run(page).response)]
            scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert scroll <= inner, f"{width} px: the upload page scrolls sideways after {path.name}"
            assert not problems, "\n".join(problems)
