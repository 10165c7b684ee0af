"""Uploads are streamed to a temporary file and hashed on the way, never held in memory.

The SHA-256 computed while the bytes arrive is step 1 of the import, so the file is not read
twice for it. An upload over ``EXTADMIN_MAX_UPLOAD_BYTES`` is stopped as soon as it is known to be
too large (from Content-Length, or while counting bytes); the view then answers 413.
"""
from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler


class HashingUploadHandler(TemporaryFileUploadHandler):
    def __init__(self, request: Any = None) -> None:
        super().__init__(request)
        self.received = 0
        self.declared_too_large = False

    def handle_raw_input(
        self, input_data: Any, META: Any, content_length: int, boundary: Any, encoding: Any = None
    ) -> None:
        self.request.upload_too_large = False  # type: ignore[union-attr]
        self.received = 0
        if content_length and content_length > settings.EXTADMIN_MAX_UPLOAD_BYTES + 64 * 1024:
            # Known too large: stop at the first file, before a byte of it is stored. Not here: a
            # StopUpload raised from handle_raw_input escapes Django's parser (a 500 instead of a
            # 413), and the form fields before the file (the CSRF token) would go unread.
            self.request.upload_too_large = True  # type: ignore[union-attr]

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        if self.request.upload_too_large:  # type: ignore[union-attr]
            raise StopUpload(connection_reset=True)
        super().new_file(*args, **kwargs)
        self.digest = hashlib.sha256()
        self.file_received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received += len(raw_data)
        self.file_received += len(raw_data)
        if self.declared_too_large or self.received > settings.EXTADMIN_MAX_UPLOAD_BYTES:
            self.request.upload_too_large = True  # type: ignore[union-attr]
            self.file.close()  # the temporary file is deleted on close: partial data discarded
            raise StopUpload(connection_reset=True)
        self.digest.update(raw_data)
        self.file.write(raw_data)

    def file_complete(self, file_size: int) -> TemporaryUploadedFile | None:
        uploaded = super().file_complete(file_size)
        if uploaded is not None:
            uploaded.sha256 = self.digest.hexdigest()  # type: ignore[attr-defined]
        return uploaded  # type: ignore[return-value]
