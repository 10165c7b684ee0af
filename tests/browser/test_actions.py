"""Acting where you look, in Debian's headless Chromium against a real server: pause and resume
syncing with a reason, forget a node from its dashboard cell, upload several files (one refused,
taken out of the selection, the rest sent again) and find all of it on the operations page."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from playwright.sync_api import Browser, Page, expect

from extadmin.models import ExtensionPackage, Operation
from extadmin.storage import NodeStorage
from nodes.models import ClusterSettings, Node
from nodes.services import node_get_or_register
from tests.packages import build_package
from tests.processes import ROOT, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = ROOT / "test-artifacts"
PERMS = ["add_extensionpackage", "delete_extensionpackage", "change_clustersettings", "delete_node"]
SENTENCE = re.compile(r"Syncing paused by alice at \d\d:\d\d \(UTC\): bulk import")

# Every text the upload's progress line shows, in order (a MutationObserver: phases can be short).
RECORD_PHASES = """() => {
  window.__phases = [];
  const el = document.getElementById("upload-progress-text");
  new MutationObserver(() => window.__phases.push(el.textContent))
    .observe(el, {childList: true, characterData: true, subtree: true});
}"""


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    yield pg
    context.close()


@pytest.fixture
def alice(db) -> User:  # type: ignore[no-untyped-def]
    user = User.objects.create_user("alice", password="pw-alice-1")
    user.user_permissions.add(*Permission.objects.filter(codename__in=PERMS))
    return user


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def login(page: Page, base: str) -> None:
    page.goto(base + "/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw-alice-1")
    page.click("button[type=submit]")
    expect(page).to_have_url(base + "/")


def test_it_pauses_uploads_several_files_forgets_a_node_and_shows_it_all_in_operations(
    page: Page, live_server, alice: User, node_storage: NodeStorage, pkgdir: Path,  # type: ignore[no-untyped-def]
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = live_server.url
    node_get_or_register(name="gone", storage=node_storage.root.parent / "gone")  # registered, never seen: offline
    login(page, base)

    # Pause from the dashboard, saying why: the banner says who, when and why on every page.
    page.fill("#pause-reason", "bulk import")
    page.click("button:has-text('Pause syncing')")
    expect(page).to_have_url(base + "/")
    expect(page.locator(".sync-banner")).to_have_text(SENTENCE)
    expect(page.locator(".messages")).to_contain_text("lets each node sync it once")
    assert ClusterSettings.objects.get(pk=1).paused_reason == "bulk import"
    shot(page, "h4-01-paused")
    page.click("header nav >> text=Nodes")
    expect(page.locator(".sync-banner")).to_have_text(SENTENCE)

    # Three files, one hostile: the summary names it with its step; nothing is imported.
    good = [build_package(pkgdir, "GoodOne"), build_package(pkgdir, "GoodTwo")]
    hostile = build_package(pkgdir, "Hostile", files={"../evil.txt": b"pwned"})
    page.goto(base + "/extensions/upload/")
    expect(page.locator(".sync-banner")).to_have_text(SENTENCE)
    page.set_input_files("#id_file", [str(good[0]), str(hostile), str(good[1])])
    expect(page.locator("#chosen-list li")).to_have_count(3)
    page.evaluate(RECORD_PHASES)
    page.click("button[value=import]")
    summary = page.locator("#upload-summary")
    refused = summary.locator('tr[data-file="Hostile-1.0.0.zip"]')
    expect(refused).to_have_attribute("data-outcome", "refused")
    expect(refused).to_contain_text("validate: entry '../evil.txt' escapes the package folder")
    expect(summary.locator('tr[data-outcome="not imported"]')).to_have_count(2)
    expect(page.locator("#upload-progress-text")).to_have_text("refused: see each file below")
    phases = page.evaluate("window.__phases")
    assert any("processing on the server: validating, unpacking, saving" in p for p in phases), phases
    assert not ExtensionPackage.objects.exists()
    shot(page, "h4-02-upload-refused-summary")

    # Take the refused file out of the selection and send the rest: both imported, listed per file.
    # The import waits after its first unzip: meanwhile the page says what the server is doing.
    page.click("button[aria-label='Remove Hostile-1.0.0.zip from the selection']")
    expect(page.locator("#chosen-list li")).to_have_count(2)
    expect(page.locator("#chosen-files")).not_to_contain_text("Hostile")
    release = tmp_path / "release"
    monkeypatch.setenv("EXTADMIN_FAULTS", f"import.after_unzip=wait:{release}")
    page.click("button[value=import]")
    wait_for(lambda: release.with_name("release.reached").exists(), timeout=30, what="the import to reach its unzip")
    expect(page.locator("#upload-progress-text")).to_contain_text(
        re.compile(r"processing on the server: unpacking Good(One|Two) \(1 of 2\)… \d+ s")
    )
    shot(page, "h4-03a-upload-server-phase")
    monkeypatch.delenv("EXTADMIN_FAULTS")
    release.touch()
    expect(summary.locator('tr[data-outcome="imported"]')).to_have_count(2)
    expect(summary.locator('tr[data-file="GoodTwo-1.0.0.zip"]')).to_contain_text("GoodTwo 1.0.0 (imported)")
    expect(page).to_have_url(base + "/extensions/upload/")
    expect(page.locator("#chosen-list li")).to_have_count(0)
    assert set(ExtensionPackage.objects.values_list("name", flat=True)) == {"GoodOne", "GoodTwo"}
    shot(page, "h4-03-upload-summary")

    # The operations page, filtered through its form: a shareable URL.
    page.click("header nav >> text=Operations")
    page.fill("form.filters input[name=package]", "GoodTwo")
    page.select_option("form.filters select[name=kind]", "import")
    page.click("form.filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"/operations/\?package=GoodTwo&node=&user=&kind=import&outcome="))
    rows = page.locator("table.operations tbody tr[data-operation]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("alice")
    rows.first.locator("summary").click()
    expect(rows.first.locator("ol.steps")).to_contain_text("archive: succeeded")
    expect(page.locator("footer a[href='/api/docs/']")).to_be_visible()
    shot(page, "h4-04-operations-filtered")
    page.goto(base + "/operations/?kind=pause")
    expect(page.locator("table.operations tbody tr[data-operation]")).to_contain_text("Reason: bulk import")

    # Resume from the banner, on the package page.
    page.goto(base + "/extensions/GoodOne/")
    page.click(".sync-banner button:has-text('Resume syncing')")
    expect(page).to_have_url(base + "/extensions/GoodOne/")
    expect(page.locator(".messages")).to_contain_text("Syncing resumed; every node was asked to sync now.")
    expect(page.locator(".sync-banner")).to_have_count(0)
    assert ClusterSettings.objects.get(pk=1).sync_paused is False

    # Forget the offline node from its dashboard cell.
    page.goto(base + "/")
    cell = page.locator('td.cell[data-package="GoodOne"][data-node="gone"]')
    expect(cell).to_have_attribute("data-state", "offline")
    cell.locator("a:has-text('forget node…')").click()
    expect(page).to_have_url(base + "/nodes/gone/forget/")
    page.click("button:has-text('Forget gone')")
    expect(page).to_have_url(base + "/")
    expect(page.locator(".messages")).to_contain_text("Node gone was forgotten")
    assert not Node.objects.filter(name="gone").exists()
    page.goto(base + "/operations/?node=gone")
    expect(page.locator("table.operations tbody tr[data-operation]")).to_contain_text("forget node")
    shot(page, "h4-05-operations-forgotten")
    kinds = list(Operation.objects.order_by("id").values_list("kind", "via", "username"))
    assert kinds == [
        ("pause", "browser", "alice"), ("import", "browser", "alice"), ("import", "browser", "alice"),
        ("resume", "browser", "alice"), ("forget_node", "browser", "alice"),
    ]


def test_it_uploads_several_files_and_shows_the_summary_without_javascript(
    browser: Browser, live_server, alice: User, node_storage: NodeStorage, pkgdir: Path  # type: ignore[no-untyped-def]
) -> None:
    base = live_server.url
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        login(page, base)
        page.goto(base + "/extensions/upload/")
        page.set_input_files("#id_file", [str(build_package(pkgdir, "Plain1")), str(build_package(pkgdir, "Plain2"))])
        page.click("button[value=import]")
        expect(page).to_have_url(base + "/extensions/upload/")
        expect(page.locator('#upload-summary tr[data-outcome="imported"]')).to_have_count(2)
        shot(page, "h4-06-upload-summary-no-js")
        page.goto(base + "/")
        page.fill("#pause-reason", "bulk import")
        page.click("button:has-text('Pause syncing')")
        expect(page.locator(".sync-banner")).to_have_text(SENTENCE)
        page.click(".sync-banner button:has-text('Resume syncing')")
        expect(page.locator(".sync-banner")).to_have_count(0)
    finally:
        context.close()
