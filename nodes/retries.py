"""Retries that stop: the one rule for when a node tries a checksum it failed again.

A node that fails a package's checksum (its install, its signature, its health probe) counts the
failure on its sync state (``failures``: tries of that checksum that failed in a row, the first
included) and schedules the next try (``next_retry_at``): ``EXTADMIN_SYNC_RETRY_BACKOFF`` seconds
(5) after the first failure, doubled after each next one, never more than
``EXTADMIN_SYNC_RETRY_BACKOFF_MAX`` (300), at most ``EXTADMIN_SYNC_RETRIES`` (5) retries. After the
last one it schedules none: the node gave up on that checksum, and every pass leaves it alone,
writing nothing, until

- a new checksum is desired (a new version, a rollback): the count starts over;
- an operator asks for a retry (``retry now`` on the node page, ``POST /api/nodes/<name>/retry/``,
  ``manage.py sync_node``): the count is set to 0, so the next pass tries at once;
- the package is installed (proved) some other way, or removed.

Every pass of the agent (startup, periodic, nudge) follows the rule, and the agent wakes for the next
due retry; a ``manual`` pass (``sync_node``) is an operator's retry now.
No query here: ``nodes.sync_states`` writes the fields, ``nodes.reconcile`` asks ``retry_due``.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from django.conf import settings

FAILED = "failed"


class RetryFields(Protocol):
    state: str
    desired_sha256: str
    failures: int
    next_retry_at: datetime | None


def retry_delay(failures: int) -> float:
    """Seconds to wait after the ``failures``-th failure in a row (1, 2, …): 5, 10, 20, … up to the cap."""
    base = settings.EXTADMIN_SYNC_RETRY_BACKOFF
    return float(min(base * 2 ** max(failures - 1, 0), settings.EXTADMIN_SYNC_RETRY_BACKOFF_MAX))


def next_retry_at(*, failures: int, now: datetime) -> datetime | None:
    """When to retry after ``failures`` failures in a row; None once every retry was used (gave up)."""
    if failures > settings.EXTADMIN_SYNC_RETRIES:
        return None
    return now + timedelta(seconds=retry_delay(failures))


def gave_up(row: RetryFields) -> bool:
    return row.state == FAILED and row.failures > 0 and row.next_retry_at is None


def retry_due(row: RetryFields | None, *, desired_sha256: str, now: datetime) -> bool:
    """Whether a pass may try ``desired_sha256`` now, given the node's state row for the package.

    Anything but a counted failure of this very checksum may be tried; a counted one when its
    next retry is due. A node that gave up never retries by itself.
    """
    if row is None or row.state != FAILED or row.desired_sha256 != desired_sha256 or row.failures == 0:
        return True
    return row.next_retry_at is not None and row.next_retry_at <= now
