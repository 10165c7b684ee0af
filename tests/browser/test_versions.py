"""Rollback and quarantine from the package page in Debian's headless Chromium, JavaScript off and on.

JavaScript off proves the buttons are plain forms; the re-upload of quarantined bytes is refused in
the page with the same words as the CLI and the API.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from extadmin.importing import ImportItem, package_import
from extadmin.models import ExtensionPackage, Operation
from extadmin.storage import NodeStorage
from tests.browser.test_console import login, make_user, shot
from tests.packages import build_package

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(params=[False, True], ids=["no-js", "js"])
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, java_script_enabled=request.param)
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    yield pg
    context.close()


def test_it_rolls_back_and_quarantines_from_the_package_page(
    page: Page, live_server, node_storage: NodeStorage, pkgdir: Path  # type: ignore[no-untyped-def]
) -> None:
    base = live_server.url
    v1, v2 = build_package(pkgdir, "Alpha", "1.0.0"), build_package(pkgdir, "Alpha", "2.0.0")
    for path in (v1, v2):
        package_import(items=[ImportItem(path=path)])
    make_user("op", can_change=True)
    login(page, base, "op", "pw-op-1")

    page.goto(base + "/extensions/Alpha/")
    versions = page.locator("#versions")
    expect(versions.locator("tr[data-version='1.0.0']")).to_contain_text("retained")
    page.click("button:has-text('Roll back to 1.0.0')")
    expect(page.locator("body")).to_contain_text("Alpha was rolled back from 2.0.0 to 1.0.0")
    expect(page.locator("tr[data-version='1.0.0']")).to_have_attribute("data-current", "true")
    assert ExtensionPackage.objects.get().version == "1.0.0"

    row = page.locator("tr[data-version='2.0.0']")
    row.locator("input[name=reason]").fill("leaks memory")
    row.locator("button:has-text('Quarantine 2.0.0')").click()
    expect(page.locator("body")).to_contain_text("Alpha 2.0.0 is quarantined: no node installs it again.")
    expect(page.locator("tr[data-version='2.0.0']")).to_contain_text("quarantined leaks memory")
    shot(page, "30-versions-quarantined")

    page.goto(base + "/extensions/upload/")
    page.set_input_files("input[name=file]", str(v2))
    page.click("button[value=import]")
    expect(page.locator(".refusal")).to_contain_text("checksum: quarantined: leaks memory")
    assert ExtensionPackage.objects.get().version == "1.0.0"
    assert set(Operation.objects.filter(via="browser").values_list("kind", flat=True)) >= {"rollback", "quarantine"}
