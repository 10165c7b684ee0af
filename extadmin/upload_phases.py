"""The upload page's "where is the server with my upload": one row per upload while it runs.

``upload_phases_reported`` wraps an import or a validation from the console: it writes
"validating" at once, then every phase the import reaches (``extadmin.progress``), and deletes the
row when the upload has its answer. Each write is its own autocommit statement, outside the
import's transaction, so the page's poll (``upload_phase_get``) sees it while the POST still runs,
from any console process. A user reads only their own uploads' phases.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from datetime import timedelta
from typing import Any

from django.db import DatabaseError
from django.utils import timezone

from extadmin.models import UploadPhase
from extadmin.progress import progress_reported

UPLOAD_ID = re.compile(r"[A-Za-z0-9-]{8,64}")
STALE_AFTER = timedelta(hours=1)  # a row left by a process that died mid-upload


def upload_id_valid(upload_id: str) -> bool:
    return bool(UPLOAD_ID.fullmatch(upload_id))


def upload_phase_set(*, user: Any, upload_id: str, phase: str, detail: str = "") -> None:
    UploadPhase.objects.update_or_create(
        user=user, upload_id=upload_id,
        defaults={"phase": phase, "detail": detail[:200], "updated_at": timezone.now()},
    )


def upload_phase_get(*, user: Any, upload_id: str) -> UploadPhase | None:
    if not upload_id_valid(upload_id):
        return None
    return UploadPhase.objects.filter(user=user, upload_id=upload_id).first()


@contextmanager
def _reported(user: Any, upload_id: str) -> Iterator[None]:
    # The upload matters more than the report of it: a failed write only leaves the page guessing.
    with suppress(DatabaseError):
        UploadPhase.objects.filter(updated_at__lt=timezone.now() - STALE_AFTER).delete()
        upload_phase_set(user=user, upload_id=upload_id, phase="validating")
    try:
        with progress_reported(lambda phase, detail: upload_phase_set(
            user=user, upload_id=upload_id, phase=phase, detail=detail
        )):
            yield
    finally:
        with suppress(DatabaseError):
            UploadPhase.objects.filter(user=user, upload_id=upload_id).delete()


def upload_phases_reported(*, user: Any, upload_id: str) -> Any:
    """Report this upload's phases while the block runs; nothing when the page sent no (valid) id."""
    if not upload_id_valid(upload_id) or not getattr(user, "pk", None):
        return nullcontext()
    return _reported(user, upload_id)
