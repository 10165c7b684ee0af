"""Nodes, what each one has proved about each package, and the history of their syncs."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class Node(models.Model):
    name = models.CharField(max_length=128, unique=True)
    host = models.CharField(max_length=255, blank=True)
    storage_path = models.CharField(max_length=1024, blank=True)
    agent_version = models.CharField(max_length=64, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    # The node's sync lease: one sync at a time. A sync holds it until it ends or until
    # ``sync_lock_until`` passes (a hung or dead sync), when the next one may take it over.
    sync_lock_owner = models.CharField(max_length=128, blank=True)
    sync_lock_until = models.DateTimeField(null=True, blank=True)
    sync_requested_at = models.DateTimeField(null=True, blank=True)
    behind_since = models.DateTimeField(null=True, blank=True, help_text="set while syncing is paused")
    # The PostgreSQL role this node's agent logs in as (``node_credentials``): the row-level
    # security policies let that role write this row, its sync states and its sync runs, nothing else.
    db_role = models.CharField(max_length=63, blank=True, help_text="the node's own database role")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["db_role"], condition=~models.Q(db_role=""), name="node_db_role_unique")
        ]

    def __str__(self) -> str:
        return self.name


class SyncState(models.Model):
    """What one node holds of one package, as the node itself last proved and reported it."""

    class State(models.TextChoices):
        PENDING = "pending", "pending"
        SYNCING = "syncing", "syncing"
        INSTALLED = "installed", "installed"
        FAILED = "failed", "failed"
        REMOVING = "removing", "removing"
        # A rollout's words (``rollouts.rules``): the node holds the version its rollout says for now.
        WAITING = "waiting", "waiting"  # keeps the previous version until its batch is admitted
        STAGED = "staged", "staged"  # the new version is built beside the old one, until activation
        REVERTED = "reverted", "reverted"  # back on the previous version: the rollout was aborted
        # The package's desired checksum is quarantined: the node neither installs nor removes it
        # (``error`` says whether it holds those bytes: ``nodes.convergence.quarantine_words``).
        QUARANTINED = "quarantined", "quarantined"

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="states")
    # By name, not a foreign key: the state of a removal outlives the package row.
    package_name = models.CharField(max_length=128)
    desired_version = models.CharField(max_length=64, blank=True)
    desired_sha256 = models.CharField(max_length=64, blank=True)
    installed_version = models.CharField(max_length=64, blank=True)
    installed_sha256 = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    error = models.TextField(blank=True)
    changed_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    # Retries of a failed checksum (``nodes.retries``): how many tries of ``desired_sha256`` failed in a
    # row (the first included; 0 after a success, a new checksum or a "retry now"), and when the next
    # automatic one is due. Failed with ``failures`` > 0 and no next retry: the node gave up on it.
    # A database default too: an agent of the previous release, still running, inserts rows without it.
    failures = models.PositiveIntegerField(default=0, db_default=0)
    next_retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["node", "package_name"]
        constraints = [
            models.UniqueConstraint(fields=["node", "package_name"], name="sync_state_one_per_node_package")
        ]
        # A package's rows, and the latest to finish first: the dashboard's "last sync" of each
        # package is one step into it (``nodes.selectors.cluster_snapshot``).
        indexes = [models.Index(fields=["package_name", "-finished_at"], name="sync_state_package_finished")]

    def __str__(self) -> str:
        return f"{self.node_id}/{self.package_name}: {self.state}"


class SyncRun(models.Model):
    class Trigger(models.TextChoices):
        STARTUP = "startup", "startup"
        NUDGE = "nudge", "nudge"
        PERIODIC = "periodic", "periodic"
        MANUAL = "manual", "manual"
        IMPORT = "import", "local import"

    class Outcome(models.TextChoices):
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        TIMED_OUT = "timed_out", "timed out"
        PAUSED = "paused", "paused"

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    actions = models.JSONField(default=list, blank=True, help_text="what the sync did, one line each")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["node", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.node_id} {self.trigger} {self.started_at:%Y-%m-%d %H:%M:%S} {self.outcome}"


class ClusterSettings(models.Model):
    """One row: cluster-wide switches (sync pause for bulk imports)."""

    sync_paused = models.BooleanField(default=False)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    paused_reason = models.CharField(
        max_length=200, blank=True, help_text="why syncing is paused, in the operator's words"
    )

    class Meta:
        verbose_name_plural = "cluster settings"
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="cluster_settings_singleton")]

    def __str__(self) -> str:
        return "syncing paused" if self.sync_paused else "syncing running"
