"""Webhook endpoints, the deliveries of events to them, and what the watcher last emitted."""
from __future__ import annotations

import uuid

from django.db import models


class WebhookEndpoint(models.Model):
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list, help_text="the event names this endpoint receives")
    # Kept to sign every delivery; never shown again after creation (pages, API and logs show the hint).
    secret = models.CharField(max_length=256)
    description = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url

    @property
    def secret_hint(self) -> str:
        """Enough to tell two secrets apart, never enough to sign with."""
        return f"…{self.secret[-4:]}" if len(self.secret) >= 12 else "…"


class WebhookDelivery(models.Model):
    """One event for one endpoint: the exact body sent, and every attempt's outcome."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"  # waiting for its next attempt
        SENDING = "sending", "sending"  # an attempt is running (until ``claimed_until``)
        DELIVERED = "delivered", "delivered"
        FAILED = "failed", "failed"  # gave up after the last attempt

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.UUIDField(default=uuid.uuid4)
    event = models.CharField(max_length=64)
    # The exact bytes signed and sent (UTF-8 JSON): a resend sends the same ones.
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    resent_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["endpoint", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint_id}: {self.status}"


class WebhookWatch(models.Model):
    """What the watcher last saw of one fact (``webhooks.watch``): an event fires when a fact changes."""

    key = models.CharField(max_length=400, unique=True)
    value = models.CharField(max_length=200, blank=True)
    changed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.key}={self.value}"
