"""The operations page: the audit trail in the console, filtered by GET parameters, a page at a time."""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from extadmin.models import ExtensionPackage, Operation, OperationStep
from extadmin.operations import Actor
from nodes.cluster import cluster_pause
from tests.semantics.support import make_user, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader() -> Client:
    client = Client()
    client.force_login(make_user("reader"))
    return client


def shown_ids(client: Client, query: str = "") -> list[int]:
    response = client.get("/operations/" + query)
    assert response.status_code == 200
    return [int(i) for i in re.findall(r'data-operation="(\d+)"', response.content.decode())]


def op(
    kind: str, *, package: str = "", node: str = "web", user: str = "", outcome: str = "succeeded", **kw: object
) -> Operation:
    return Operation.objects.create(
        kind=kind, package_name=package, node=node, username=user, outcome=outcome, via="api",
        started_at=kw.pop("started_at", timezone.now()), **kw,  # type: ignore[arg-type]
    )


def test_it_shows_every_operation_newest_first_to_any_signed_in_user(
    reader: Client, imported: Callable[..., ExtensionPackage]
) -> None:
    imported("Audited")
    admin = User.objects.create_superuser("root", password=None)
    cluster_pause(actor=Actor(user=admin, via="api"), reason="bulk import")
    ids = shown_ids(reader)
    assert ids == list(Operation.objects.order_by("-started_at", "-id").values_list("id", flat=True))
    page = reader.get("/operations/").content.decode()
    assert "Reason: bulk import" in page
    assert "1. checksum" not in page and "checksum: succeeded" in page  # its steps
    assert 'href="/api/docs/"' in page and 'href="/api/operations/"' in page
    assert 'href="/operations/"' in reader.get("/").content.decode(), "linked from the header"
    assert Client().get("/operations/")["Location"].startswith("/accounts/login/")


def test_it_filters_by_package_node_user_kind_and_outcome(reader: Client) -> None:
    a = op("import", package="A", user="alice")
    b = op("remove", package="B", user="bob", node="n2")
    c = op("import", package="B", user="alice", outcome="failed", error_step="validate", error="bad zip")
    d = op("forget_node", node="n2", user="bob")
    assert shown_ids(reader, "?package=B") == [c.pk, b.pk]
    assert shown_ids(reader, "?node=n2") == [d.pk, b.pk]
    assert shown_ids(reader, "?user=alice") == [c.pk, a.pk]
    assert shown_ids(reader, "?kind=import") == [c.pk, a.pk]
    assert shown_ids(reader, "?outcome=failed") == [c.pk]
    assert shown_ids(reader, "?package=B&user=alice&kind=import&outcome=failed") == [c.pk]
    assert shown_ids(reader, "?package=nothing") == []
    page = reader.get("/operations/?outcome=failed").content.decode()
    assert "<strong>validate</strong>: bad zip" in page
    assert 'option value="failed" selected' in page, "the form shows the filter it applied"
    assert "1 operation matches the filters" in page


def test_it_refuses_an_unknown_kind_or_outcome_naming_it(reader: Client) -> None:
    op("import", package="A")
    response = reader.get("/operations/?kind=explode")
    assert response.status_code == 400
    assert "there is no kind &#x27;explode&#x27;; it is one of import, upgrade" in response.content.decode()
    response = reader.get("/operations/?outcome=%3Cb%3E")
    assert response.status_code == 400 and "<b>" not in response.content.decode()


def test_it_shows_a_failed_operation_s_steps_and_error(reader: Client) -> None:
    failed = op("import", package="Doomed", outcome="failed", error_step="persist", error="disk full")
    now = timezone.now()
    OperationStep.objects.create(operation=failed, number=1, name="checksum", outcome="backed_out",
                                 started_at=now, duration_ms=3)
    OperationStep.objects.create(operation=failed, number=3, name="persist", outcome="failed",
                                 started_at=now, duration_ms=5, error="disk full")
    page = reader.get("/operations/?package=Doomed").content.decode()
    assert "<details open>" in page
    assert re.search(r'value="1">checksum: backed out', page)
    assert re.search(r'value="3">persist: failed .*disk full', page)


def test_it_pages_keeping_the_filters_in_the_links(reader: Client) -> None:
    start = timezone.now() - timedelta(hours=2)
    made = [op("import", package="Many", started_at=start + timedelta(seconds=i)) for i in range(60)]
    op("import", package="Other")
    first = shown_ids(reader, "?package=Many")
    assert first == [o.pk for o in reversed(made)][:50]
    page = reader.get("/operations/?package=Many").content.decode()
    assert 'href="?package=Many&amp;page=2"' in page and "page 1 of 2" in page
    assert shown_ids(reader, "?package=Many&page=2") == [o.pk for o in reversed(made)][50:]
    assert shown_ids(reader, "?package=Many&page=junk") == first


def test_it_filters_the_api_s_trail_the_same_way_in_the_same_words(reader: Client) -> None:
    a = op("import", package="A", user="alice")
    op("remove", package="B", user="bob", node="n2")
    c = op("import", package="B", user="alice", outcome="failed", error_step="validate", error="bad zip")
    api = token_client(make_user("apireader"))
    queries = ["?package=B", "?node=n2", "?user=alice", "?kind=import", "?outcome=failed", "?user=alice&kind=import"]
    for query in queries:
        assert [o["id"] for o in api.get("/api/operations/" + query).json()] == shown_ids(reader, query), query
    assert [o["id"] for o in api.get("/api/operations/?user=alice").json()] == [c.pk, a.pk]
    refused = api.get("/api/operations/?kind=explode")
    assert refused.status_code == 400
    reason = refused.json()["error"]["reason"]
    assert refused.json()["error"]["step"] == "filter" and reason.startswith("there is no kind 'explode'; it is one of")
    assert reason.replace("'", "&#x27;") in reader.get("/operations/?kind=explode").content.decode()
