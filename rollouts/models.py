"""Rollouts: a new version admitted to the nodes batch by batch, and the cluster's default policy.

A rollout is data (its policy, its state, which batch is admitted, each node's place in it and the
reason it halted); ``rollouts.rules`` turns it into the version each node should hold, and
``rollouts.engine`` moves it on, every transition a conditional UPDATE.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models

from nodes.models import Node


class RolloutPolicy(models.Model):
    """One row: the cluster's default rollout policy (none: ``EXTADMIN_ROLLOUT`` says)."""

    canary = models.CharField(max_length=1024, blank=True, help_text="node names, comma separated")
    batch = models.PositiveIntegerField(null=True, blank=True, help_text="empty: all nodes at once")
    max_failures = models.PositiveIntegerField(null=True, blank=True, help_text="empty: never halt")
    activation = models.CharField(max_length=16, default="each")
    changed_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "rollout policy"
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="rollout_policy_singleton")]

    def __str__(self) -> str:
        return "cluster rollout policy"


class Rollout(models.Model):
    class State(models.TextChoices):
        RUNNING = "running", "running"
        PAUSED = "paused", "paused"
        HALTED = "halted", "halted"
        ACTIVATING = "activating", "activating"  # together mode: every admitted node staged, all swap now
        COMPLETED = "completed", "completed"
        ABORTED = "aborted", "aborted"

    package_name = models.CharField(max_length=128, db_index=True)
    version = models.CharField(max_length=64)
    sha256 = models.CharField(max_length=64)
    # What the nodes not admitted keep, and what an abort puts back ("" for a first import).
    from_version = models.CharField(max_length=64, blank=True)
    from_sha256 = models.CharField(max_length=64, blank=True)
    from_manifest = models.JSONField(default=list, blank=True)
    from_signature = models.TextField(blank=True)
    canary = models.JSONField(default=list, blank=True)
    batch_size = models.PositiveIntegerField(null=True, blank=True)
    max_failures = models.PositiveIntegerField(null=True, blank=True)
    activation = models.CharField(max_length=16, default="each")
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    batch = models.PositiveIntegerField(default=1, help_text="the highest admitted batch (0: the canary)")
    last_batch = models.PositiveIntegerField(default=1)
    reason = models.TextField(blank=True, help_text="why it halted, in one sentence")
    created_at = models.DateTimeField()
    changed_at = models.DateTimeField()
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"rollout of {self.package_name} {self.version} ({self.state})"


class RolloutNode(models.Model):
    """One node's place in a rollout. ``waiting`` until its batch is admitted (derived from the
    rollout's batch); the node itself writes the rest: staged, installed, failed, reverted."""

    class State(models.TextChoices):
        WAITING = "waiting", "waiting"
        ADMITTED = "admitted", "admitted"
        STAGED = "staged", "staged"
        INSTALLED = "installed", "installed"
        FAILED = "failed", "failed"
        REVERTED = "reverted", "reverted"

    # A node whose part in the rollout's current step is over: it proved the version, or failed.
    SETTLED = (State.INSTALLED, State.FAILED)

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="nodes")
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="+")
    batch = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.WAITING)
    error = models.TextField(blank=True)
    changed_at = models.DateTimeField()
    staged_at = models.DateTimeField(null=True, blank=True, help_text="when it reported the new version staged")
    swapped_at = models.DateTimeField(null=True, blank=True, help_text="when it swapped the new version in")

    class Meta:
        ordering = ["rollout", "batch", "node__name"]
        constraints = [models.UniqueConstraint(fields=["rollout", "node"], name="rollout_node_once")]

    def __str__(self) -> str:
        return f"{self.node_id} in {self.rollout_id}: {self.state}"
