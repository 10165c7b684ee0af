"""Extension packages, their entities, their archive in the database, and the operation log.

The database is the cluster's source of truth. A package is *desired* on every node once its
``Archive`` row exists: that row is written last in the import, after every chunk, so a package
whose archive is incomplete is never visible to a node.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models


class ExtensionPackage(models.Model):
    class State(models.TextChoices):
        ACTIVE = "active", "active"
        REMOVING = "removing", "removing"

    name = models.CharField(max_length=128, unique=True)
    version = models.CharField(max_length=64)
    vendor = models.CharField(max_length=512, blank=True)
    description = models.TextField(blank=True)
    minimum_platform_version = models.CharField(max_length=64, blank=True)
    depends_on = models.TextField(blank=True, help_text="dependsOn as written in metadata.xml")
    build_number = models.TextField(blank=True)
    ha_compatible = models.BooleanField(null=True, help_text="None when metadata.xml does not say")
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    imported_at = models.DateTimeField()
    imported_on_node = models.CharField(max_length=128)
    # The detached OpenSSH signature that came with the zip (armored text; "" when none, or when
    # EXTADMIN_SIGNATURES was off), which every node checks again; and who it proved signed it.
    signature = models.TextField(blank=True)
    signer = models.TextField(blank=True, help_text="the allowed_signers principal; '' when not verified")
    signer_key = models.CharField(max_length=64, blank=True, help_text="SHA256 fingerprint of the signing key")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


class Entity(models.Model):
    """One entity that the package's metadata.xml declares (Thing, Widget, Resource, ...)."""

    package = models.ForeignKey(ExtensionPackage, on_delete=models.CASCADE, related_name="entities")
    type = models.CharField(max_length=128)
    name = models.CharField(max_length=512)

    class Meta:
        ordering = ["type", "name"]
        constraints = [
            models.UniqueConstraint(fields=["package", "type", "name"], name="entity_unique_per_package")
        ]
        # Who else declares this entity: the collision check looks up (type, name) across packages.
        indexes = [models.Index(fields=["type", "name"], name="entity_type_name")]
        verbose_name_plural = "entities"

    def __str__(self) -> str:
        return f"{self.type} {self.name}"


class Archive(models.Model):
    """The package's zip as persisted: written after every chunk, so its presence means complete."""

    package = models.OneToOneField(ExtensionPackage, on_delete=models.CASCADE, related_name="archive")
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    chunk_size = models.PositiveIntegerField()
    chunk_count = models.PositiveIntegerField()
    manifest = models.JSONField(default=list, help_text="[path, size, crc32] of every file in the zip")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"archive of {self.package_id} ({self.size} bytes)"


class RetainedVersion(models.Model):
    """An earlier version of a package, kept for rollback (``extadmin.versions``): its zip (as
    chunks pointing here), and everything its import stored, so it can be imported again."""

    package = models.ForeignKey(ExtensionPackage, on_delete=models.CASCADE, related_name="retained_versions")
    version = models.CharField(max_length=64)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    chunk_size = models.PositiveIntegerField()
    chunk_count = models.PositiveIntegerField()
    manifest = models.JSONField(default=list, help_text="[path, size, crc32] of every file in the zip")
    vendor = models.CharField(max_length=512, blank=True)
    depends_on = models.TextField(blank=True, help_text="dependsOn as written in metadata.xml")
    ha_compatible = models.BooleanField(null=True)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    imported_by_name = models.CharField(max_length=150, blank=True, help_text="kept when the user is deleted")
    imported_at = models.DateTimeField()
    imported_on_node = models.CharField(max_length=128)
    signature = models.TextField(blank=True)
    signer = models.TextField(blank=True)
    signer_key = models.CharField(max_length=64, blank=True)
    retained_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["package", "-imported_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["package", "sha256"], name="retained_version_unique_sha256")
        ]

    def __str__(self) -> str:
        return f"{self.package_id}:{self.version} (retained)"


class StagedArchive(models.Model):
    """A zip on its way in: its chunks, sent while the import validates and unzips.

    It lives only inside one import's open transaction (``extadmin.archive_ahead``) and is never
    committed: step 4 re-points its chunks to the package and deletes it, in that transaction;
    any failure rolls it back with everything else. No other connection ever sees one.
    """

    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"staged archive {self.pk}"


class ArchiveChunk(models.Model):
    """One fixed-size piece of a package's zip; never the whole zip in one row.

    It belongs to the package's current archive (``package``), to one retained version
    (``retained``), or, inside an import's transaction only, to a ``StagedArchive`` (``staged``):
    to exactly one of them. An upgrade re-points the old chunks, the bytes stay where they are.
    """

    package = models.ForeignKey(
        ExtensionPackage, null=True, blank=True, on_delete=models.CASCADE, related_name="chunks"
    )
    retained = models.ForeignKey(  # no index of its own: the unique (retained, seq) below serves
        RetainedVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="chunks", db_index=False
    )
    staged = models.ForeignKey(  # no index of its own: the unique (staged, seq) below serves
        StagedArchive, null=True, blank=True, on_delete=models.CASCADE, related_name="chunks", db_index=False
    )
    seq = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["package", "seq"], name="chunk_unique_seq"),
            models.UniqueConstraint(fields=["retained", "seq"], name="chunk_unique_retained_seq"),
            models.UniqueConstraint(fields=["staged", "seq"], name="chunk_unique_staged_seq"),
            models.CheckConstraint(
                condition=models.Q(package__isnull=False, retained__isnull=True, staged__isnull=True)
                | models.Q(package__isnull=True, retained__isnull=False, staged__isnull=True)
                | models.Q(package__isnull=True, retained__isnull=True, staged__isnull=False),
                name="chunk_of_one_archive",
            ),
        ]

    def __str__(self) -> str:
        if self.package_id:
            return f"chunk {self.seq} of {self.package_id}"
        return f"chunk {self.seq} of retained {self.retained_id}" if self.retained_id else f"chunk {self.seq} (staged)"


class Quarantine(models.Model):
    """A checksum no node may install again, and why (``extadmin.quarantine``)."""

    package_name = models.CharField(max_length=128, db_index=True)
    version = models.CharField(max_length=64)
    sha256 = models.CharField(max_length=64, unique=True)
    reason = models.TextField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["package_name", "-created_at"]
        verbose_name_plural = "quarantines"

    def __str__(self) -> str:
        return f"{self.package_name}:{self.version} quarantined"


class Operation(models.Model):
    """One operator action (import, upgrade, removal, pause, resume, forget a node, sync or retry a node,
    a rollout control) and its outcome: the audit trail."""

    class Kind(models.TextChoices):
        IMPORT = "import", "import"
        UPGRADE = "upgrade", "upgrade"
        REIMPORT = "reimport", "re-import"
        REMOVE = "remove", "removal"
        PAUSE = "pause", "pause syncing"
        RESUME = "resume", "resume syncing"
        FORGET_NODE = "forget_node", "forget node"
        ROLLOUT_PAUSE = "rollout_pause", "pause rollout"
        ROLLOUT_RESUME = "rollout_resume", "resume rollout"
        ROLLOUT_ABORT = "rollout_abort", "abort rollout"
        ROLLOUT_POLICY = "rollout_policy", "rollout policy"
        ROLLBACK = "rollback", "rollback"
        QUARANTINE = "quarantine", "quarantine"
        SYNC_NOW = "sync_now", "sync now"
        RETRY = "retry", "retry now"

    class Outcome(models.TextChoices):
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        INTERRUPTED = "interrupted", "interrupted"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    package_name = models.CharField(max_length=128, blank=True, db_index=True)
    version = models.CharField(max_length=64, blank=True)
    previous_version = models.CharField(max_length=64, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    node = models.CharField(max_length=128, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True, help_text="kept when the user is deleted")
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    via = models.CharField(max_length=16, blank=True, help_text="browser, api, cli or admin")
    pid = models.IntegerField(null=True, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    error_step = models.CharField(max_length=32, blank=True)
    error = models.TextField(blank=True)
    warnings = models.TextField(blank=True)
    reason = models.CharField(max_length=200, blank=True, help_text="why, in the operator's words (a pause)")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["package_name", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.package_name} {self.version} ({self.outcome})"


class OperationStep(models.Model):
    """One numbered step of an operation, with its duration and outcome."""

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        BACKED_OUT = "backed_out", "backed out"

    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="steps")
    number = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=64)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    started_at = models.DateTimeField()
    duration_ms = models.FloatField()
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["operation", "number"]
        constraints = [
            models.UniqueConstraint(fields=["operation", "number"], name="operation_step_unique_number")
        ]

    def __str__(self) -> str:
        return f"{self.number}. {self.name}: {self.outcome}"


class UploadPhase(models.Model):
    """Where the server is with one upload from the console (validating, unpacking, saving), so the
    page can say it while the POST runs. Written outside the import's transaction, deleted when the
    upload answers; ``upload_id`` is the page's random id for that submission."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    upload_id = models.CharField(max_length=64)
    phase = models.CharField(max_length=32)
    detail = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "upload_id"], name="upload_phase_one_per_upload")]

    def __str__(self) -> str:
        return f"{self.upload_id}: {self.phase} {self.detail}".strip()
