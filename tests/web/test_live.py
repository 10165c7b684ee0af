"""Big clusters and live updates, through the views: /?q= /?state= sort and pages; the live part's
ETag and 304; the server-sent event stream's content. Browser behaviour: tests/browser/test_live.py."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from extadmin.models import ExtensionPackage
from nodes.changes import FEED_NAME, change_token
from nodes.convergence import STATE_FILTERS
from nodes.models import ClusterSettings, Node, SyncState
from tests.processes import wait_for
from tests.web.cluster import converge_packages, seed_cluster

pytestmark = pytest.mark.django_db

CONVERGED = [f"Pkg{j:03d}" for j in range(0, 300, 2)]  # every other package: converged everywhere


def rows(html: str) -> list[str]:
    return re.findall(r'<tr class="(?:done|open)" id="row-([^"]+)"', html)


def cells(html: str) -> list[tuple[str, str, str]]:
    return re.findall(r'data-package="([^"]+)" data-node="([^"]+)" data-state="([^"]+)"', html)


def every_page(client: Client, query: str) -> tuple[list[str], list[tuple[str, str, str]], str]:
    """Every row and cell the dashboard shows for ``query``, following its pages."""
    found_rows: list[str] = []
    found_cells: list[tuple[str, str, str]] = []
    page, first = 1, ""
    while True:
        html = client.get(f"/?{query}&page={page}").content.decode()
        first = first or html
        found_rows += rows(html)
        found_cells += cells(html)
        if 'rel="next"' not in html:
            return found_rows, found_cells, first
        page += 1


@pytest.fixture(scope="class")
def big_rows(django_db_setup, django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """100 nodes × 300 packages, seeded once for the tests of TestABigCluster, which only read them
    (each test's own changes are rolled back with its transaction); deleted after the last of them."""
    with django_db_blocker.unblock():
        seed_cluster(100, 300)
        converge_packages(CONVERGED)
    yield
    with django_db_blocker.unblock():
        Node.objects.filter(name__in=[f"n{i:03d}" for i in range(100)]).delete()  # their sync states with them
        ExtensionPackage.objects.filter(name__in=[f"Pkg{j:03d}" for j in range(300)]).delete()


@pytest.fixture
def big(big_rows, db, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_HEARTBEAT_INTERVAL = 3600  # the seeded nodes stay online while the test runs


# --- filters --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("big")
class TestABigCluster:
    """The dashboard of one seeded big cluster (``big_rows``), through the views."""

    def test_it_shows_only_what_is_not_converged_by_default_on_a_big_cluster(self, viewer_client: Client) -> None:
        shown, found, html = every_page(viewer_client, "")
        assert sorted(shown) == sorted(f"Pkg{j:03d}" for j in range(1, 300, 2))
        assert "Only what is not converged (the default above 40 nodes" in html
        assert found and all(state != "installed" for _, _, state in found)
        all_rows, _, html = every_page(viewer_client, "state=all")
        assert len(all_rows) == 300
        assert "Only what is not converged" not in html

    def test_it_filters_every_state_by_the_one_rule(self, viewer_client: Client) -> None:
        for state in ("failed", "syncing", "pending"):
            shown, found, _ = every_page(viewer_client, f"state={state}")
            assert shown, state
            assert {s for _, _, s in found} == {state}, state
            with_state = {p for p, _, _ in found}
            assert set(shown) == with_state, state  # a row for each package with such a cell, no other
        Node.objects.filter(name__in=["n098", "n099"]).update(last_heartbeat=timezone.now() - timedelta(days=1))
        shown, found, _ = every_page(viewer_client, "state=offline")
        assert len(shown) == 300 and {n for _, n, _ in found} == {"n098", "n099"}

    def test_it_shows_only_the_selected_nodes_in_the_full_grid(self, viewer_client: Client) -> None:
        html = viewer_client.get("/?view=grid&state=failed&q=Pkg001").content.decode()
        headers = re.findall(r'<th[^>]* class="node [a-z]+" data-node="([^"]+)"', html)
        failed_rows = SyncState.objects.filter(package_name="Pkg001", state="failed")
        failed = sorted(failed_rows.values_list("node__name", flat=True))
        assert headers == failed and len(failed) == 4  # the grid's columns: only the nodes where it failed
        assert {(p, s) for p, _, s in cells(html)} == {("Pkg001", "failed")}

    def test_it_searches_package_and_node_names(self, viewer_client: Client) -> None:
        shown, _, _ = every_page(viewer_client, "q=pkg01&state=all")
        assert sorted(shown) == [f"Pkg{j:03d}" for j in range(10, 20)]
        html = viewer_client.get("/?q=N00&state=all&view=grid").content.decode()
        headers = re.findall(r'<th[^>]* class="node [a-z]+" data-node="([^"]+)"', html)
        assert headers == [f"n{i:03d}" for i in range(10)]
        assert {n for _, n, _ in cells(html)} <= set(headers)
        html = viewer_client.get("/?q=nothing-has-this").content.decode()
        assert "No package or node name contains &#x27;nothing-has-this&#x27;." in html

    def test_it_sorts_and_pages(self, viewer_client: Client) -> None:
        by_name, _, _ = every_page(viewer_client, "state=all")
        assert by_name == sorted(by_name, key=str.casefold)
        newest = ExtensionPackage.objects.order_by("-imported_at", "name").values_list("name", flat=True)[0]
        html = viewer_client.get("/?state=all&sort=imported").content.decode()
        assert rows(html)[0] == newest
        html = viewer_client.get("/?state=all&sort=state").content.decode()
        assert all(name not in CONVERGED for name in rows(html))  # the not converged come first
        page2 = viewer_client.get("/?state=all&page=2").content.decode()
        assert rows(page2) == by_name[50:100]
        assert 'href="?state=all&amp;page=3" rel="next"' in page2
        assert 'href="?state=all" rel="prev"' in page2

    @pytest.mark.parametrize("query, note", [
        ("state=bogus", "state: &#x27;bogus&#x27; is not a filter (choose not_converged, failed, offline, syncing, "
                        "pending or all); showing every state"),
        ("sort=size", "sort: &#x27;size&#x27; is not a sort order (choose name, state, imported); sorted by name"),
        ("page=abc", "page: &#x27;abc&#x27; is not a page number (1, 2, …); showing page 1"),
        ("page=0", "page: &#x27;0&#x27; is not a page number (1, 2, …); showing page 1"),
        ("page=99", "page: there are 6 page(s) of packages; showing the last"),
        ("view=cube", "view: &#x27;cube&#x27; is not a view (choose grid or compact); the default view is shown"),
        ("q=" + "x" * 300, "q: the search text is longer than 128 characters; only its start is used"),
    ])
    def test_it_ignores_a_bad_parameter_and_says_so(self, viewer_client: Client, query: str, note: str) -> None:
        response = viewer_client.get(f"/?state=all&{query}" if "state=" not in query else f"/?{query}")
        assert response.status_code == 200
        assert note in response.content.decode()
        assert viewer_client.get(f"/?{query}", HTTP_HX_REQUEST="true").status_code == 200

    def test_it_names_every_filter_in_the_form(self, viewer_client: Client) -> None:
        html = viewer_client.get("/").content.decode()
        for state in STATE_FILTERS:
            assert f'<option value="{state}"' in html
        assert '<input type="search" name="q"' in html


# --- ETag / 304 -----------------------------------------------------------------------------------


def test_the_live_part_answers_304_while_nothing_changed(viewer_client: Client) -> None:
    seed_cluster(5, 5)
    page = viewer_client.get("/").content.decode()
    etag = re.search(r'data-live-etag="([^"]+)"', page).group(1).replace("&quot;", '"')  # type: ignore[union-attr]
    first = viewer_client.get("/", HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=etag)
    assert first.status_code == 304 and first.content == b""  # the page's own ETag: nothing to send
    assert first["ETag"] == etag
    SyncState.objects.filter(package_name="Pkg001").update(state="failed", error="disk full", changed_at=timezone.now())
    changed = viewer_client.get("/", HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert "disk full" in changed.content.decode()
    again = viewer_client.get("/", HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=changed["ETag"])
    assert again.status_code == 304
    # another URL (another filter) is another part: never the same ETag
    other = viewer_client.get("/?state=failed", HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=changed["ETag"])
    assert other.status_code == 200


def test_the_token_changes_with_time_alone_when_a_node_goes_offline(db) -> None:  # type: ignore[no-untyped-def]
    seed_cluster(3, 2)
    before = change_token()
    assert change_token() == before
    Node.objects.filter(name="n001").update(last_heartbeat=timezone.now() - timedelta(hours=1))
    assert change_token() != before  # no sync state was written, yet the page would differ


def test_the_token_changes_with_what_a_live_page_shows(db) -> None:  # type: ignore[no-untyped-def]
    seed_cluster(3, 2)
    seen = {change_token()}
    ClusterSettings.objects.update_or_create(pk=1, defaults={"sync_paused": True, "paused_at": timezone.now()})
    seen.add(change_token())
    SyncState.objects.filter(node__name="n001", package_name="Pkg000").delete()
    seen.add(change_token())
    ExtensionPackage.objects.filter(name="Pkg001").update(state="removing")
    seen.add(change_token())
    Node.objects.create(name="late", last_heartbeat=timezone.now())
    seen.add(change_token())
    assert len(seen) == 5


def test_the_package_and_node_pages_answer_304_too(viewer_client: Client) -> None:
    seed_cluster(3, 2)
    for url in ("/extensions/Pkg000/", "/nodes/n001/"):
        first = viewer_client.get(url, HTTP_HX_REQUEST="true")
        assert first.status_code == 200, url
        assert viewer_client.get(url, HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    SyncState.objects.filter(node__name="n001").update(state="syncing", changed_at=timezone.now())
    for url in ("/extensions/Pkg000/", "/nodes/n001/"):
        assert viewer_client.get(url, HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 200


# --- the event stream -----------------------------------------------------------------------------


def read_events(response, until: str, timeout: float = 10.0) -> str:  # type: ignore[no-untyped-def]
    """The stream's text up to and including the first event named ``until``."""
    text, deadline = "", time.monotonic() + timeout
    for chunk in response.streaming_content:
        text += chunk.decode()
        if f"event: {until}\n" in text or time.monotonic() > deadline:
            return text
    return text


@pytest.mark.django_db(transaction=True)  # on PostgreSQL the stream watches from a connection of its own
def test_the_stream_says_hello_then_each_change(viewer_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_LIVE_STREAM_SECONDS = 8
    settings.EXTADMIN_LIVE_RECHECK_SECONDS = 0.2
    seed_cluster(3, 2)
    token = change_token()
    response = viewer_client.get(f"/live/events/?since={token}")
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache" and response["X-Accel-Buffering"] == "no"
    hello = read_events(response, "hello")
    assert hello.startswith("retry: 1000\n") and f"id: {token}\nevent: hello\n" in hello
    SyncState.objects.filter(node__name="n002", package_name="Pkg001").update(state="failed", changed_at=timezone.now())
    changed = read_events(response, "change")
    new = change_token()
    assert new != token and f"id: {new}\nevent: change\ndata: {new}\n\n" in changed
    response.close()


def test_the_stream_tells_at_once_what_changed_since_the_page(viewer_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_LIVE_STREAM_SECONDS = 0.5
    seed_cluster(2, 2)
    now = change_token()
    text = b"".join(viewer_client.get("/live/events/?since=older").streaming_content).decode()
    assert f"event: hello\ndata: {'push' if connection.vendor == 'postgresql' else 'polled'}\n" in text
    assert f"event: change\ndata: {now}\n" in text
    # after a reconnect the browser sends the last token it had: nothing new, no change event
    text = b"".join(viewer_client.get("/live/events/", HTTP_LAST_EVENT_ID=now).streaming_content).decode()
    assert "event: change" not in text and "event: hello" in text


def test_a_stream_past_the_limit_says_busy(viewer_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_LIVE_STREAMS = 0
    text = b"".join(viewer_client.get("/live/events/").streaming_content).decode()
    assert "event: busy\ndata: too many live pages are open on this console process\n" in text


def test_the_stream_needs_a_login() -> None:
    response = Client().get("/live/events/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.postgresql  # LISTEN/NOTIFY is PostgreSQL's; SQLite's stream compares tokens (tested above)
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_commit_is_pushed_without_waiting_for_a_recheck(viewer_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_LIVE_STREAM_SECONDS = 20
    settings.EXTADMIN_LIVE_RECHECK_SECONDS = 15  # far longer than the bound below
    seed_cluster(3, 2)
    response = viewer_client.get(f"/live/events/?since={change_token()}")
    assert "data: push" in read_events(response, "hello")
    t0 = time.monotonic()
    SyncState.objects.filter(node__name="n001").update(state="failed", changed_at=timezone.now())
    assert "event: change" in read_events(response, "change")
    assert time.monotonic() - t0 < 5
    response.close()


def test_a_get_caused_by_an_event_takes_the_events_token(viewer_client: Client, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    seed_cluster(3, 2)
    token = change_token()
    plain = viewer_client.get("/", HTTP_HX_REQUEST="true")
    said = viewer_client.get("/", HTTP_HX_REQUEST="true", HTTP_X_LIVE_TOKEN=token)
    assert said["ETag"] == plain["ETag"]  # the same data, the same label
    # session, user, the grid's four and the user's permissions (the cells' actions): no token read again
    with django_assert_num_queries(8):
        viewer_client.get("/", HTTP_HX_REQUEST="true", HTTP_X_LIVE_TOKEN=token)
    with django_assert_num_queries(12):  # not a token: read as usual
        viewer_client.get("/", HTTP_HX_REQUEST="true", HTTP_X_LIVE_TOKEN="'; drop table x; --")


@pytest.mark.django_db(transaction=True)
def test_the_stream_tells_when_a_node_goes_offline_though_nothing_announced_it(viewer_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_LIVE_STREAM_SECONDS = 8
    settings.EXTADMIN_LIVE_RECHECK_SECONDS = 0.3
    seed_cluster(3, 2)
    response = viewer_client.get(f"/live/events/?since={change_token()}")
    read_events(response, "hello")
    # As time alone would: its last heartbeat falls out of the window (a heartbeat announces nothing).
    Node.objects.filter(name="n001").update(last_heartbeat=timezone.now() - timedelta(hours=1))
    assert f"event: change\ndata: {change_token()}\n" in read_events(response, "change")
    response.close()


# --- the change feed on PostgreSQL: one listener per console process --------------------------------


def feed_backends() -> list[int]:
    """The backends of this database that listen for the live pages (by their application_name)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
                       [FEED_NAME])
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_the_streams_of_a_process_share_one_listening_connection(viewer_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_LIVE_STREAM_SECONDS = 20
    settings.EXTADMIN_HEARTBEAT_INTERVAL = 3600  # no node goes offline while the test runs
    seed_cluster(3, 2)
    token = change_token()
    first = viewer_client.get(f"/live/events/?since={token}")
    second = viewer_client.get(f"/live/events/?since={token}")
    assert "data: push" in read_events(first, "hello") and "data: push" in read_events(second, "hello")
    assert len(feed_backends()) == 1
    SyncState.objects.filter(node__name="n001").update(state="failed", changed_at=timezone.now())
    new = change_token()
    assert f"data: {new}" in read_events(first, "change") and f"data: {new}" in read_events(second, "change")
    first.close()
    second.close()


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_reconnect_reads_no_token_while_nothing_changed(viewer_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_LIVE_STREAM_SECONDS = 0.5
    settings.EXTADMIN_HEARTBEAT_INTERVAL = 3600  # no node goes offline while the test runs
    seed_cluster(3, 2)
    token = change_token()
    assert "event: change" not in b"".join(viewer_client.get(f"/live/events/?since={token}").streaming_content).decode()
    # The browser reconnects the ended stream: the token the process read for the first is still right.
    again = viewer_client.get("/live/events/", HTTP_LAST_EVENT_ID=token)
    with CaptureQueriesContext(connection) as asked:
        text = b"".join(again.streaming_content).decode()
    assert f"id: {token}\nevent: hello" in text and "event: change" not in text
    assert asked.captured_queries == []
    SyncState.objects.filter(node__name="n002").update(state="failed", changed_at=timezone.now())
    text = b"".join(viewer_client.get("/live/events/", HTTP_LAST_EVENT_ID=token).streaming_content).decode()
    assert f"event: change\ndata: {change_token()}\n" in text


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_the_feed_listens_again_when_its_connection_is_lost(viewer_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_LIVE_STREAM_SECONDS = 20
    settings.EXTADMIN_HEARTBEAT_INTERVAL = 3600  # no node goes offline while the test runs
    seed_cluster(3, 2)
    response = viewer_client.get(f"/live/events/?since={change_token()}")
    read_events(response, "hello")
    [lost] = feed_backends()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [lost])
    wait_for(lambda: feed_backends() not in ([], [lost]), timeout=10, what="the feed listening again")
    SyncState.objects.filter(node__name="n001").update(state="failed", changed_at=timezone.now())
    assert f"event: change\ndata: {change_token()}\n" in read_events(response, "change")
    response.close()
