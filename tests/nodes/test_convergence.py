"""The one rule: what a node holds of a package, when it is online, and when a package is converged."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models.functions import Now
from django.utils import timezone

from nodes.convergence import FUTURE_TOLERANCE, Tally, Verdict, tally, verdict
from nodes.models import Node
from nodes.selectors import node_rows
from nodes.services import node_heartbeat, node_seen

ACTIVE, REMOVING = "active", "removing"


@pytest.mark.parametrize(
    ("online", "package", "reported", "proved", "expected"),
    [
        (True, ACTIVE, "installed", True, Verdict("installed", True, False, "")),
        (True, ACTIVE, "installed", False, Verdict("pending", False, True, "")),  # holds an older checksum
        (True, ACTIVE, None, False, Verdict("pending", False, False, "")),
        (True, ACTIVE, "syncing", False, Verdict("syncing", False, False, "")),
        (True, ACTIVE, "failed", False, Verdict("failed", False, False, "")),
        (True, REMOVING, "installed", True, Verdict("removing", False, False, "")),
        (True, None, None, False, Verdict("removed", True, False, "")),
        (True, None, "installed", False, Verdict("removing", False, False, "")),
        (True, None, "failed", False, Verdict("failed", False, False, "")),
        (False, ACTIVE, "installed", True, Verdict("offline", False, False, "installed")),
        (False, ACTIVE, "installed", False, Verdict("offline", False, True, "pending")),
        (False, ACTIVE, None, False, Verdict("offline", False, False, "pending")),
        (False, None, None, False, Verdict("offline", False, False, "removed")),
    ],
)
def test_it_gives_every_cell_one_word(
    online: bool, package: str | None, reported: str | None, proved: bool, expected: Verdict
) -> None:
    assert verdict(online, package, reported, proved) == expected


def test_it_is_converged_when_every_online_node_proved_it_and_one_is_online() -> None:
    installed = verdict(True, ACTIVE, "installed", True)
    offline = verdict(False, ACTIVE, "installed", True)
    pending = verdict(True, ACTIVE, None, False)
    assert tally([installed, installed, installed, offline]) == Tally(3, 3, 1)
    assert tally([installed, installed, installed, offline]).converged is True
    assert tally([installed, pending, offline]).converged is False
    assert tally([offline, offline]).converged is False  # nobody online: nothing proven
    assert tally([]).converged is False


@pytest.mark.django_db
def test_it_judges_liveness_by_the_database_clock_and_ignores_the_future(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_HEARTBEAT_INTERVAL = 5
    now = timezone.now()
    ages = {
        "fresh": timedelta(0), "late": timedelta(seconds=10), "gone": timedelta(seconds=20),
        "skewed": -FUTURE_TOLERANCE / 2, "future": -timedelta(days=3650),
    }
    for name, age in ages.items():
        Node.objects.create(name=name, last_heartbeat=now - age)
    Node.objects.create(name="never")

    online = {name: is_online for _, name, _, is_online in node_rows()}

    assert online == {"fresh": True, "late": True, "gone": False, "skewed": True, "future": False, "never": False}


@pytest.mark.django_db
def test_it_stamps_proofs_of_life_with_the_database_clock() -> None:
    Node.objects.create(name="n1", last_heartbeat=timezone.now() + timedelta(days=3650))
    assert node_heartbeat(name="n1") and node_seen(name="n1")
    db_now = Node.objects.annotate(db_now=Now()).values_list("db_now", flat=True).get(name="n1")
    seen = Node.objects.get(name="n1").last_heartbeat
    assert seen is not None and timedelta(0) <= db_now - seen < timedelta(seconds=5), connection.vendor
    assert not node_seen(name="gone")  # no row: nothing written, and the agent is told
