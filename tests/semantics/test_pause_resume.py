"""Cluster-wide sync pause and resume: the switch, its audit, and the nudge on resume.
Service, CLI and API (the agents' side of honouring the switch is tested with the agents)."""
from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User

from extadmin.models import Operation
from extadmin.operations import Actor
from nodes import services as node_services
from nodes.cluster import cluster_pause, cluster_resume
from nodes.models import ClusterSettings, Node
from nodes.selectors import sync_paused
from tests.processes import run_command
from tests.semantics.support import make_user, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def nudges(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record nudges instead of publishing them to the broker."""
    sent: list[Any] = []
    monkeypatch.setattr(node_services, "nodes_nudge", lambda *, exclude=None: sent.append(exclude) or 0)
    return sent


def test_it_pauses_creating_the_settings_row(operator: User) -> None:
    assert not ClusterSettings.objects.exists()
    assert sync_paused() is False
    row, op = cluster_pause(actor=Actor(user=operator, remote_addr="10.0.0.7", via="api"))
    row = ClusterSettings.objects.get(pk=1)
    assert (row.sync_paused, row.paused_by) == (True, operator)
    assert row.paused_at is not None
    op.refresh_from_db()
    assert (op.kind, op.outcome, op.username, op.remote_addr, op.via) == (
        "pause", "succeeded", "operator", "10.0.0.7", "api"
    )
    assert op.finished_at is not None


def test_it_keeps_the_first_pause_time_when_paused_again(operator: User) -> None:
    first, _ = cluster_pause(actor=Actor(user=operator))
    again, _ = cluster_pause(actor=Actor(user=None, via="cli"))
    assert again.paused_at == first.paused_at
    assert again.paused_by == operator
    assert Operation.objects.filter(kind="pause").count() == 2


def test_it_resumes_and_nudges_every_node_after_commit(
    operator: User, nudges: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    Node.objects.create(name="node-2")
    cluster_pause(actor=Actor(user=operator))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        row, op = cluster_resume(actor=Actor(user=operator, via="cli"))
        assert nudges == []  # not before the commit
    assert len(callbacks) == 1
    assert nudges == [None]  # no node excluded
    assert (row.sync_paused, row.paused_at, row.paused_by) == (False, None, None)
    assert ClusterSettings.objects.get(pk=1).sync_paused is False
    assert Operation.objects.get(pk=op.pk).kind == "resume"


def test_it_does_not_nudge_on_pause(operator: User, nudges: list[Any], django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        cluster_pause(actor=Actor(user=operator))
    assert nudges == []


def test_it_pauses_and_resumes_through_the_cli(nudges: list[Any], django_capture_on_commit_callbacks: Any) -> None:
    code, out, _ = run_command("sync_pause")
    assert code == 0 and out.startswith("syncing paused on every node since ")
    assert ClusterSettings.objects.get(pk=1).sync_paused is True
    code, out, _ = run_command("sync_pause", "--json")
    assert json.loads(out)["sync_paused"] is True
    with django_capture_on_commit_callbacks(execute=True):
        code, out, _ = run_command("sync_resume")
    assert code == 0 and out.strip() == "syncing resumed; every node was asked to sync now"
    assert ClusterSettings.objects.get(pk=1).sync_paused is False
    assert list(Operation.objects.order_by("id").values_list("kind", "via")) == [
        ("pause", "cli"), ("pause", "cli"), ("resume", "cli")
    ]


def test_it_pauses_and_resumes_through_the_api(nudges: list[Any], django_capture_on_commit_callbacks: Any) -> None:
    admin = make_user("switcher", "nodes.change_clustersettings")
    client = token_client(admin)
    response = client.post("/api/cluster/pause/")
    assert response.status_code == 200
    body = response.json()
    assert (body["sync_paused"], body["paused_by"]) == (True, "switcher")
    assert Operation.objects.get(pk=body["operation"]).remote_addr == "127.0.0.1"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/cluster/resume/")
    assert response.status_code == 200
    assert response.json()["sync_paused"] is False
    assert nudges == [None]
