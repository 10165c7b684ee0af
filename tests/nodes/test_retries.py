"""Retries that stop (``nodes.retries``, issue 12 item 8), on real sync passes with a real failing probe.

A failed checksum is retried after a backoff that doubles, at most EXTADMIN_SYNC_RETRIES times;
passes before the retry is due leave it alone and write nothing; then the node gives up until a new
checksum, a "retry now" or ``sync_node``.
"""
from __future__ import annotations

import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from extadmin.models import Operation
from extadmin.operations import Actor
from extadmin.packaging import Conflict
from extadmin.storage import NodeStorage
from nodes.actions import node_retry
from nodes.models import SyncRun, SyncState
from nodes.presenters import retry_words
from nodes.retries import retry_delay
from nodes.status import cluster_document
from tests.nodes.conftest import Importer, Syncer
from tests.nodes.test_health_probe import FAILS_FOR_2, probe, probes_run
from tests.nodes.test_node_actions import nudges_for
from tests.processes import run_command

pytestmark = pytest.mark.django_db

BACKOFF = 0.4


@pytest.fixture
def failing(tmp_path: Path, settings, import_package: Importer, sync: Syncer) -> Path:  # type: ignore[no-untyped-def]
    """n1 holds Alpha 1.0.0; Alpha 2.0.0 is imported and its probe fails; two retries, 0.4 s apart at first."""
    settings.EXTADMIN_HEALTH_PROBE = [str(probe(tmp_path, FAILS_FOR_2))]
    settings.EXTADMIN_SYNC_RETRIES = 2
    settings.EXTADMIN_SYNC_RETRY_BACKOFF = BACKOFF
    import_package("Alpha", "1.0.0")
    assert sync().ok
    import_package("Alpha", "2.0.0")
    return tmp_path


def state() -> SyncState:
    return SyncState.objects.get(node__name="n1", package_name="Alpha")


def fields(s: SyncState) -> dict[str, object]:
    return {f.name: getattr(s, f.name) for f in SyncState._meta.concrete_fields}


def wait_due() -> None:
    due = state().next_retry_at
    assert due is not None
    time.sleep(max((due - timezone.now()).total_seconds(), 0) + 0.05)


def periodic(sync: Syncer) -> list[str]:
    return sync(trigger=SyncRun.Trigger.PERIODIC, verify_contents=False).actions


def test_it_backs_off_doubling_and_gives_up_after_the_last_retry(failing: Path, sync: Syncer) -> None:
    periodic(sync)
    first = state()
    assert (first.state, first.failures) == ("failed", 1)
    assert first.next_retry_at is not None and first.finished_at is not None
    assert abs((first.next_retry_at - first.finished_at).total_seconds() - BACKOFF) < 0.05

    # Not due yet: the pass leaves it alone and writes nothing (not even "pending").
    assert periodic(sync) == []
    assert fields(state()) == fields(first)
    assert len(probes_run(failing)) == 2  # 1.0.0 once, 2.0.0 once

    wait_due()
    assert periodic(sync) == ["failed Alpha 2.0.0: health probe exit 1: checking the platform log"]
    second = state()
    assert second.failures == 2 and second.next_retry_at is not None and second.finished_at is not None
    assert abs((second.next_retry_at - second.finished_at).total_seconds() - 2 * BACKOFF) < 0.05

    wait_due()
    periodic(sync)
    gave_up = state()
    assert (gave_up.failures, gave_up.next_retry_at) == (3, None)  # the first try and two retries
    assert cluster_document()["extensions"][0]["nodes"]["n1"]["retry"] == "gave up after 2 retries"

    time.sleep(2 * BACKOFF)
    assert periodic(sync) == [] and fields(state()) == fields(gave_up)
    # A nudge's pass and an agent's startup pass follow the rule too.
    assert sync(trigger=SyncRun.Trigger.NUDGE, verify_contents=False).actions == []
    assert sync(trigger=SyncRun.Trigger.STARTUP).actions == []
    assert len(probes_run(failing)) == 4


def test_it_says_the_next_retry_in_the_operators_time_zone(failing: Path, sync: Syncer) -> None:
    periodic(sync)
    at = state().next_retry_at
    assert at is not None
    with timezone.override(ZoneInfo("Asia/Tokyo")):
        words = cluster_document()["extensions"][0]["nodes"]["n1"]["retry"]
    assert words == f"retry 1/2 at {at.astimezone(ZoneInfo('Asia/Tokyo')):%H:%M:%S} JST"


def test_it_starts_over_for_a_new_checksum(failing: Path, sync: Syncer, import_package: Importer,
                                           n1: NodeStorage) -> None:
    periodic(sync)
    assert state().failures == 1
    v3 = import_package("Alpha", "3.0.0")  # passes its probe
    assert periodic(sync) == ["updated Alpha to 3.0.0 (was 1.0.0)"]
    s = state()
    assert (s.state, s.failures, s.next_retry_at, s.installed_sha256) == ("installed", 0, None, v3.sha256)
    assert n1.read_chk("Alpha") == v3.sha256


def test_it_retries_now_when_the_operator_asks(failing: Path, sync: Syncer) -> None:
    for _ in range(3):
        periodic(sync)
        if state().next_retry_at is not None:
            wait_due()
    assert (state().failures, state().next_retry_at) == (3, None)  # gave up

    acted = node_retry(name="n1", actor=Actor(via="api"))
    assert acted.packages == ["Alpha"] and acted.operation.kind == Operation.Kind.RETRY
    assert (state().state, state().failures) == ("failed", 0)  # the failure stays shown until the retry
    periodic(sync)
    assert (state().failures, state().next_retry_at is not None) == (1, True)  # counting again: retry 1/2
    assert nudges_for("n1")  # n1 was online: its agent was asked (read here, so no other test sees it)


def test_it_retries_at_once_through_sync_node(failing: Path, sync: Syncer, n1: NodeStorage) -> None:
    for _ in range(3):
        periodic(sync)
        if state().next_retry_at is not None:
            wait_due()
    tries = len(probes_run(failing))
    code, _, err = run_command("sync_node", "--name", "n1", "--storage", str(n1.root))
    assert code == 1 and "Alpha: health probe exit 1: checking the platform log" in err
    assert len(probes_run(failing)) == tries + 1 and state().failures == 1


def test_it_refuses_a_retry_when_nothing_failed(db, sync: Syncer, import_package: Importer) -> None:  # type: ignore[no-untyped-def]
    import_package("Alpha")
    sync()
    with pytest.raises(Conflict) as refused:
        node_retry(name="n1", actor=Actor())
    assert str(refused.value) == "retry: nothing to retry: no sync of any package on node n1 failed"
    assert not Operation.objects.filter(kind="retry").exists()


def test_it_waits_for_a_dependency_without_counting_against_the_dependent(
    failing: Path, sync: Syncer, import_package: Importer,
) -> None:
    beta = import_package("Beta", "1.0.0", depends_on="Alpha:2.0.0")
    periodic(sync)
    b = SyncState.objects.get(node__name="n1", package_name="Beta")
    assert (b.state, b.error, b.failures) == ("failed", "waits for Alpha, which could not be installed", 0)
    assert b.desired_sha256 == beta.sha256
    # While Alpha's retry is not due, Beta is left alone too.
    before = fields(b)
    assert periodic(sync) == []
    assert fields(SyncState.objects.get(node__name="n1", package_name="Beta")) == before


def test_the_delay_doubles_from_5_s_up_to_5_min_by_default() -> None:
    assert [retry_delay(n) for n in range(1, 10)] == [5, 10, 20, 40, 80, 160, 300, 300, 300]


def test_the_words_of_a_retry(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_SYNC_RETRIES = 5
    at = timezone.now().replace(hour=14, minute=5, second=0, tzinfo=ZoneInfo("UTC"))
    assert retry_words(state="failed", failures=3, next_retry_at=at) == "retry 3/5 at 14:05:00 UTC"
    assert retry_words(state="failed", failures=6, next_retry_at=None) == "gave up after 5 retries"
    assert retry_words(state="failed", failures=2, next_retry_at=None) == "gave up after 1 retry"
    assert retry_words(state="failed", failures=0, next_retry_at=None) == ""  # a retry now, not tried yet
    assert retry_words(state="installed", failures=0, next_retry_at=None) == ""


def test_it_says_the_retry_in_the_degraded_sentence(failing: Path, sync: Syncer, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_DEGRADED_AFTER = 0
    periodic(sync)
    [n1] = [n for n in cluster_document()["nodes"] if n["name"] == "n1"]
    assert n1["degraded"] is True
    assert "sync failed: health probe exit 1: checking the platform log; retry 1/2 at " in n1["degraded_reason"]
