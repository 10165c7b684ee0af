"""The console in Debian's headless Chromium, against a real running server and real node agents.

Screenshots go to ``test-artifacts/`` (kept out of git) so a person can look at every page.
"""

from __future__ import annotations

import base64
import os
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from playwright.sync_api import Browser, Page, expect

from extadmin.models import ExtensionPackage
from extadmin.storage import NodeStorage
from nodes.models import Node, SyncState
from nodes.selectors import nodes_with_liveness
from nodes.services import node_get_or_register
from tests.packages import build_package
from tests.processes import ROOT, ManagedProcess, RunCommand, child_env, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    yield pg
    context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def login(page: Page, base: str, username: str, password: str) -> None:
    page.goto(base + "/")
    expect(page).to_have_url(f"{base}/accounts/login/?next=/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    expect(page).to_have_url(base + "/")


def make_user(name: str, *, can_change: bool) -> User:
    user = User.objects.create_user(name, password=f"pw-{name}-1")
    if can_change:
        user.user_permissions.add(
            *Permission.objects.filter(
                content_type__app_label="extadmin", codename__in=["add_extensionpackage", "delete_extensionpackage"]
            )
        )
    return user


class Agents:
    """Real ``run_node`` agents, one per node, each with its own storage."""

    def __init__(self, root: Path, logs: Path) -> None:
        self.root, self.logs = root, logs
        self.procs: dict[str, ManagedProcess] = {}

    def storage(self, name: str) -> Path:
        return self.root / name

    def start(self, name: str) -> ManagedProcess:
        env = child_env(EXTADMIN_NODE=name, EXTADMIN_STORAGE=str(self.storage(name)), EXTADMIN_HEARTBEAT_INTERVAL="1")
        proc = ManagedProcess(
            "run_node",
            "--name",
            name,
            "--storage",
            str(self.storage(name)),
            "--interval",
            "2",
            env=env,
            log=self.logs / f"agent-{name}.log",
        ).start()
        self.procs[name] = proc
        return proc

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.stop()


@pytest.fixture
def agents(live_server, node_storage: NodeStorage, tmp_path: Path) -> Iterator[Agents]:  # type: ignore[no-untyped-def]
    """The server imports as node ``web`` (its storage is ``node_storage``); agents run beside it."""
    a = Agents(node_storage.root.parent, tmp_path)
    yield a
    a.stop_all()
    for name, proc in a.procs.items():
        if os.environ.get("EXTADMIN_BROWSER_LOGS"):
            shutil.copy(proc.log, ARTIFACTS / f"agent-{name}.log")


def online(name: str) -> bool:
    return bool(nodes_with_liveness().filter(name=name).values_list("online", flat=True).first())


def drop_file(page: Page, path: Path) -> None:
    """Drop a real file on the drop zone, as a drag from the desktop would."""
    data = base64.b64encode(path.read_bytes()).decode()
    page.evaluate(
        """([name, data]) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, {type: "application/zip"}));
            const zone = document.getElementById("dropzone");
            zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: dt, bubbles: true, cancelable: true}));
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""",
        [path.name, data],
    )


def test_it_imports_watches_every_node_converge_and_deletes(
    page: Page,
    live_server,
    agents: Agents,
    pkgdir: Path,  # type: ignore[no-untyped-def]
) -> None:
    base = live_server.url
    make_user("operator", can_change=True)
    agents.start("web")
    wait_for(lambda: online("web"), timeout=60, what="the web node's agent to come online")
    # n2 is known to the cluster but its agent is not running yet: its cell must wait for it.
    node_get_or_register(name="n2", storage=agents.storage("n2"))

    login(page, base, "operator", "pw-operator-1")
    shot(page, "01-dashboard-empty")

    # A real package of a few MB, uploaded over a throttled link so the progress bar can be seen.
    package = build_package(
        pkgdir,
        "ConvergeDemo",
        "1.4.2",
        description="Demo package for the convergence dashboard.",
        files={
            "lib/convergedemo.jar": os.urandom(3 * 1024 * 1024),
            "ui/ConvergeDemo/convergedemo.js": b"/* widget */",
            "Entities/Things/Things_ConvergeDemoThing.xml": b"<Entities/>",
        },
    )
    page.goto(base + "/extensions/upload/")
    page.set_input_files("#id_file", str(package))
    expect(page.locator("#chosen-files")).to_contain_text("ConvergeDemo-1.4.2.zip")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": 1024 * 1024},
    )
    page.click("button[value=import]")
    progress = page.locator("#upload-progress")
    expect(progress).to_be_visible()
    page.wait_for_function("document.getElementById('upload-progress').value > 5")
    shot(page, "02-upload-progress")
    page.wait_for_url(base + "/extensions/ConvergeDemo/", timeout=60_000)
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    assert ExtensionPackage.objects.filter(name="ConvergeDemo").exists()

    # The dashboard: web installed, n2 waiting; then n2's agent starts and syncs; no reload.
    page.goto(base + "/")
    web_cell = page.locator('td.cell[data-package="ConvergeDemo"][data-node="web"]')
    n2_cell = page.locator('td.cell[data-package="ConvergeDemo"][data-node="n2"]')
    expect(web_cell).to_have_attribute("data-state", "installed")
    expect(n2_cell).to_have_attribute("data-state", "offline")
    # n2 was never seen: it is offline, and says nothing it never reported.
    expect(n2_cell).to_contain_text("offline")
    expect(n2_cell).not_to_contain_text("last reported")
    expect(page.locator('td.count[data-package="ConvergeDemo"]')).to_have_text("1/1 online, 1 offline")
    shot(page, "03-dashboard-n2-waiting")
    page.evaluate("window.__sameDocument = true")
    agents.start("n2")
    expect(n2_cell).to_have_attribute("data-state", "installed", timeout=90_000)
    expect(page.locator('td.count[data-package="ConvergeDemo"]')).to_have_text("2/2 online", timeout=30_000)
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded instead of updating in place"
    sha = ExtensionPackage.objects.get(name="ConvergeDemo").sha256
    expect(n2_cell).to_contain_text(sha[:10])
    expect(n2_cell).to_contain_text("1.4.2")
    shot(page, "04-dashboard-converged")

    page.click('a[href="/extensions/ConvergeDemo/"]')
    expect(page.locator("h1")).to_contain_text("ConvergeDemo")
    expect(page.locator("ol.timeline .bar")).to_have_count(2)
    expect(page.locator("article.operation").first).to_contain_text("by operator from 127.0.0.1 via browser")
    shot(page, "05-package-page")

    page.goto(base + "/nodes/n2/")
    expect(page.locator('tr[data-package="ConvergeDemo"] td.why')).to_have_text("✓ up to date")
    shot(page, "06-node-page")

    # Delete, with its confirmation page; the other node removes its copy on its own.
    page.goto(base + "/extensions/ConvergeDemo/")
    page.click("text=Delete…")
    expect(page).to_have_url(base + "/extensions/ConvergeDemo/delete/")
    shot(page, "07-delete-confirm")
    page.click("button.danger")
    expect(page).to_have_url(base + "/extensions/ConvergeDemo/")
    expect(page.locator(".messages")).to_contain_text("ConvergeDemo 1.4.2 was removed")
    expect(page.locator("h1")).to_contain_text("removed")
    shot(page, "08-package-removed")
    assert not ExtensionPackage.objects.filter(name="ConvergeDemo").exists()
    wait_for(
        lambda: not SyncState.objects.filter(package_name="ConvergeDemo").exists(),
        timeout=60,
        what="n2 to remove its copy",
    )
    assert not (agents.storage("n2") / "extensions" / "ConvergeDemo").exists()


def test_it_refuses_a_hostile_zip_and_shows_markup_as_text(
    page: Page,
    live_server,
    node_storage: NodeStorage,
    pkgdir: Path,  # type: ignore[no-untyped-def]
) -> None:
    base = live_server.url
    make_user("operator", can_change=True)
    login(page, base, "operator", "pw-operator-1")

    hostile = build_package(pkgdir, "Hostile", files={"../evil.txt": b"pwned"})
    with zipfile.ZipFile(hostile) as zf:
        assert "../evil.txt" in zf.namelist()
    page.goto(base + "/extensions/upload/")
    drop_file(page, hostile)
    expect(page.locator("#chosen-files")).to_contain_text("Hostile-1.0.0.zip")
    page.click("button[value=import]")
    refusal = page.locator("#upload-result .refusal .reason")
    expect(refusal).to_have_text("validate: entry '../evil.txt' escapes the package folder")
    expect(page).to_have_url(base + "/extensions/upload/")
    shot(page, "09-hostile-zip-refused")
    assert not ExtensionPackage.objects.exists()
    assert not (node_storage.root / "extensions" / "Hostile").exists()

    # Validate only: every check, nothing changed.
    marked = build_package(pkgdir, "Marked", description="<script>window.__xss = 1</script><b>bold?</b>")
    page.set_input_files("#id_file", str(marked))
    page.click("button[value=validate]")
    expect(page.locator("#upload-result .ok")).to_contain_text("Valid.")
    assert not ExtensionPackage.objects.exists()
    shot(page, "10-validate-only")

    page.click("button[value=import]")
    page.wait_for_url(base + "/extensions/Marked/")
    description = page.locator("dd.description")
    expect(description).to_have_text("<script>window.__xss = 1</script><b>bold?</b>")
    assert page.evaluate("window.__xss") is None
    assert page.locator("dd.description b").count() == 0
    shot(page, "11-markup-as-text")


def test_it_shows_a_read_only_user_no_actions_and_403_on_them(
    page: Page,
    live_server,
    node_storage: NodeStorage,  # type: ignore[no-untyped-def]
) -> None:
    base = live_server.url
    make_user("viewer", can_change=False)
    login(page, base, "viewer", "pw-viewer-1")
    expect(page.locator("header nav")).not_to_contain_text("Upload")
    response = page.goto(base + "/extensions/upload/")
    assert response is not None and response.status == 403
    expect(page.locator("h1")).to_have_text("Not allowed")
    shot(page, "12-viewer-403")
    page.click("button:has-text('Log out')")
    expect(page).to_have_url(base + "/accounts/login/")
    shot(page, "00-login")


def test_it_keeps_troubled_and_large_clusters_readable(
    page: Page,
    live_server,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from nodes.models import SyncRun
    from tests.web.cluster import seed_cluster

    base = live_server.url
    make_user("viewer", can_change=False)
    seed_cluster(6, 10, offline=1)
    now = timezone.now()
    n001 = Node.objects.get(name="n001")
    SyncRun.objects.create(
        node=n001,
        trigger="periodic",
        started_at=now - timedelta(seconds=20),
        finished_at=now - timedelta(seconds=18),
        outcome="failed",
        error="Pkg005: checksum mismatch after download",
        actions=["installed Pkg001 1.1.0"],
    )
    login(page, base, "viewer", "pw-viewer-1")
    expect(page.locator("td.cell[data-state=failed]").first).to_be_visible()
    shot(page, "13-dashboard-troubled")
    page.goto(base + "/nodes/n001/")
    expect(
        page.locator("td.why").filter(has_text="sync failed: checksum mismatch after download, retry at")
    ).not_to_have_count(0)
    shot(page, "14-node-why")
    page.goto(base + "/nodes/n005/")
    expect(page.locator("td.why").filter(has_text="offline since")).not_to_have_count(0)
    page.click("header nav >> text=Nodes")
    expect(page).to_have_url(base + "/nodes/")
    expect(page.locator('tr[data-node="n005"][data-state="offline"]')).to_contain_text("offline")
    expect(page.locator('tr[data-node="n001"]')).to_contain_text("failed")
    shot(page, "14b-nodes-list")

    Node.objects.all().delete()
    ExtensionPackage.objects.all().delete()
    SyncState.objects.all().delete()
    seed_cluster(100, 300, offline=3)
    page.goto(base + "/")
    # Above 40 nodes: compact, only what is not converged, 50 packages a page.
    expect(page.locator("table.grid.compact tbody tr")).to_have_count(50)
    expect(page.locator("#grid-pages")).to_contain_text("page 1 of 6")
    page.set_viewport_size({"width": 1360, "height": 1400})
    page.screenshot(path=str(ARTIFACTS / "15-dashboard-100x300.png"))


def test_it_refuses_in_the_page_and_answers_404_in_style_under_scripts_run(
    page: Page, tmp_path: Path, pkgdir: Path
) -> None:
    """A new operator: ``scripts/run`` with nothing set, the printed operator, a hostile zip, a wrong URL."""
    run = RunCommand(tmp_path).start()
    try:
        run.started()
        login(page, run.url, "admin", (run.var / "admin-password.txt").read_text().strip())

        page.goto(run.url + "/extensions/upload/")
        page.set_input_files("#id_file", str(build_package(pkgdir, "Hostile", files={"../evil.txt": b"pwned"})))
        page.click("button[value=import]")
        expect(page.locator("#upload-result .refusal .reason")).to_have_text(
            "validate: entry '../evil.txt' escapes the package folder"
        )
        # The page stays whole: its header, heading and form are still there, around the refusal.
        expect(page.locator("header.top nav")).to_contain_text("Upload")
        expect(page.locator("main h1")).to_have_text("Upload extension packages")
        expect(page.locator("#upload-form")).to_be_visible()
        expect(page).to_have_url(run.url + "/extensions/upload/")
        shot(page, "16-scripts-run-hostile-zip-refused")
        assert not ExtensionPackage.objects.exists()
        assert not (run.var / "nodes" / "node-1" / "extensions" / "Hostile").exists()

        # An answer that is a whole page (here the CSRF refusal) is summed up in place, never nested.
        page.evaluate("""() => {
            document.body.setAttribute("hx-headers", JSON.stringify({"X-CSRFToken": "forged"}));
            document.querySelector("#upload-form [name=csrfmiddlewaretoken]").value = "forged";
        }""")
        page.click("button[value=import]")
        expect(page.locator("#upload-result .refusal")).to_contain_text("Not allowed: The form was sent without")
        expect(page.locator("#upload-result header")).to_have_count(0)
        expect(page.locator("header.top")).to_have_count(1)

        response = page.goto(run.url + "/extensions/NoSuch/")
        assert response is not None and response.status == 404
        expect(page.locator("main h1")).to_have_text("Not found")
        expect(page.locator("main")).to_contain_text("no extension package named 'NoSuch'")
        html = page.content()
        for leak in ("settings", "Traceback", "DEBUG", str(ROOT), "URLconf"):
            assert leak not in html, f"{leak!r} in the 404 page"
        # Styled: the console's stylesheet reached the browser (whitenoise, with DEBUG off).
        assert page.locator("section.card.narrow").evaluate("e => getComputedStyle(e).maxWidth") != "none"
        shot(page, "17-scripts-run-404")
    finally:
        run.terminate()
