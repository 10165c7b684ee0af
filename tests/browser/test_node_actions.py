"""The node page's "Sync now" and "Retry failed now" in Debian's Chromium with JavaScript off, against a
real server and a real agent whose health probe fails until the operator fixes what it checks."""
from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Browser, Page, expect

from extadmin.models import Operation
from nodes.models import SyncState
from tests.nodes.conftest import Importer, import_package  # noqa: F401 (the fixture: import on node web)
from tests.processes import ManagedProcess, child_env, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PROBE = """#!/bin/sh
[ "$EXTADMIN_VERSION" != "2.0.0" ] || [ -e "{dir}/healthy" ] || { echo "Alpha 2 did not load" >&2; exit 1; }
"""


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    yield pg
    context.close()


@pytest.fixture
def agent(tmp_path: Path, node_storage) -> Iterator[ManagedProcess]:  # type: ignore[no-untyped-def]
    script = tmp_path / "probe.sh"
    script.write_text(PROBE.replace("{dir}", str(tmp_path)))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    env = child_env(EXTADMIN_HEARTBEAT_INTERVAL="1", EXTADMIN_SYNC_INTERVAL="60", EXTADMIN_HEALTH_PROBE=str(script),
                    EXTADMIN_SYNC_RETRIES="1", EXTADMIN_SYNC_RETRY_BACKOFF="0.3")
    proc = ManagedProcess("run_node", "--name", "rack-2", "--storage", str(tmp_path / "rack-2"), env=env,
                          log=tmp_path / "rack-2.log")
    yield proc
    proc.stop()


def test_it_syncs_and_retries_a_node_from_its_page_without_javascript(
    page: Page, live_server, agent: ManagedProcess, import_package: Importer,  # noqa: F811 (the fixture)
    tmp_path: Path, settings,  # type: ignore[no-untyped-def]
) -> None:
    settings.EXTADMIN_HEARTBEAT_INTERVAL = 1.0
    base = live_server.url
    user = User.objects.create_user("olga", password="pw-olga-1")
    user.groups.add(Group.objects.get(name="operator"))
    import_package("Alpha", "1.0.0")
    agent.start()
    wait_for(lambda: SyncState.objects.filter(node__name="rack-2", package_name="Alpha", state="installed").exists(),
             timeout=60, what="rack-2 to install Alpha 1.0.0")
    v2 = import_package("Alpha", "2.0.0")
    wait_for(lambda: SyncState.objects.filter(node__name="rack-2", failures=2, next_retry_at=None).exists(),
             timeout=30, what="rack-2 to give up on Alpha 2.0.0")

    page.goto(base + "/accounts/login/?next=/nodes/rack-2/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", "pw-olga-1")
    page.click("button[type=submit]")
    expect(page).to_have_url(base + "/nodes/rack-2/")
    row = page.locator('tr[data-package="Alpha"]')
    expect(row).to_contain_text("sync failed: health probe exit 1: Alpha 2 did not load; gave up after 1 retry")

    page.get_by_role("button", name="Sync now").click()
    expect(page).to_have_url(base + "/nodes/rack-2/")
    expect(page.locator(".messages")).to_contain_text("Node rack-2 syncs now.")

    (tmp_path / "healthy").touch()
    page.get_by_role("button", name="Retry failed now (1)").click()
    expect(page).to_have_url(base + "/nodes/rack-2/")
    expect(page.locator(".messages")).to_contain_text("Node rack-2 retries Alpha now.")
    wait_for(lambda: SyncState.objects.filter(node__name="rack-2", state="installed", installed_sha256=v2.sha256)
             .exists(), timeout=30, what="rack-2 to install Alpha 2.0.0 after the retry")
    page.reload()
    expect(row).to_contain_text("up to date")
    expect(page.get_by_role("button", name="Retry failed now (1)")).to_have_count(0)
    assert list(Operation.objects.filter(node="rack-2").values_list("kind", "username", "via")
                .order_by("started_at")) == [("sync_now", "olga", "browser"), ("retry", "olga", "browser")]
