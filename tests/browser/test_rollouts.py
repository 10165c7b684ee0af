"""Rollouts in Debian's headless Chromium against a real running server: the progress on the
dashboard and the package page (live), its buttons with and without JavaScript, the upload form's
and the settings page's rollout fields. The nodes' passes are real reconcile passes over real
folders, run by the test between two looks at the page.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.models import Permission, User
from playwright.sync_api import Browser, Page, expect

from extadmin.models import ExtensionPackage, Operation
from rollouts.models import Rollout
from tests.rollouts.conftest import Nodes, import_with, nodes  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FAIL = "sync.after_fetch=raise"


def _operator() -> None:
    user = User.objects.create_user("operator", password="pw-operator-1")
    user.user_permissions.add(*Permission.objects.filter(
        codename__in=["add_extensionpackage", "change_rollout", "change_rolloutpolicy"]
    ))


def _page(browser: Browser, base: str, *, javascript: bool) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, java_script_enabled=javascript)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(base + "/accounts/login/?next=/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "pw-operator-1")
    page.click("button[type=submit]")
    expect(page).to_have_url(base + "/")
    yield page
    context.close()


@pytest.fixture
def rolling(nodes: Callable[[int], Nodes], import_with: Callable[..., ExtensionPackage]) -> Nodes:  # noqa: F811
    """Pump 2.0.0 rolling out in batches of one over n1..n3, halting after one failure."""
    cluster = nodes(3)
    import_with("Pump", "1.0.0")
    cluster.sync_all()
    import_with("Pump", "2.0.0", rollout={"batch": "1", "max_failures": "1"})
    cluster.sync("n3")
    cluster.sync("n2")
    _operator()
    return cluster


def test_the_dashboard_shows_the_rollout_live_and_the_package_page_aborts_it(
    browser: Browser, live_server, rolling: Nodes,  # type: ignore[no-untyped-def]
) -> None:
    for page in _page(browser, live_server.url, javascript=True):
        progress = page.locator(".rollouts .rollout")
        expect(progress).to_contain_text("Rollout of Pump 2.0.0 from 1.0.0")
        expect(progress).to_contain_text("n1: admitted")
        expect(progress).to_contain_text("n3: waiting for batch 3")

        rolling.sync("n1", faults=FAIL)  # the first admitted node fails: the rollout halts
        expect(progress).to_contain_text("halted at batch 1: 1 node failed (max-failures 1): n1: "
                                         "fault injected at sync.after_fetch", timeout=10_000)
        expect(progress.locator(".reason")).to_be_visible()

        page.goto(live_server.url + "/extensions/Pump/")
        page.click("text=Abort: back to 1.0.0")
        expect(page.locator(".messages")).to_contain_text("The rollout of Pump 2.0.0 was aborted")
        assert Rollout.objects.get().state == "aborted"
        assert Operation.objects.filter(kind="rollout_abort", via="browser").count() == 1


def test_pause_resume_and_the_default_policy_work_without_javascript(
    browser: Browser, live_server, rolling: Nodes,  # type: ignore[no-untyped-def]
) -> None:
    for page in _page(browser, live_server.url, javascript=False):
        page.click("text=Pause rollout")
        expect(page.locator(".messages")).to_contain_text("The rollout of Pump 2.0.0 was paused")
        expect(page.locator(".rollouts")).to_contain_text("paused")
        page.click("text=Resume rollout")
        expect(page.locator(".messages")).to_contain_text("was resumed")

        page.goto(live_server.url + "/rollouts/")
        page.fill("#id_batch", "0")
        page.click("text=Save the default")
        expect(page.locator(".refusal")).to_contain_text("rollout: batch: 0 is less than 1")
        page.fill("#id_batch", "2")
        page.fill("#id_canary", "n1")
        page.click("text=Save the default")
        expect(page.locator(".messages")).to_contain_text("canary n1, batches of 2, never halt, activation each")

        page.goto(live_server.url + "/extensions/upload/")
        expect(page.locator(".rollout-fields")).to_contain_text("canary n1, batches of 2")
        expect(page.locator("#id_max_failures")).to_be_visible()
