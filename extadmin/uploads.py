"""Uploads are streamed to a temporary file and hashed on the way, never held in memory.

The SHA-256 computed while the bytes arrive is step 1 of the import, so the file is not read
twice for it. An upload over ``EXTADMIN_MAX_UPLOAD_BYTES`` is stopped as soon as it is known to be
too large (from Content-Length, or while counting bytes); the view then answers 413. An upload
folder (``FILE_UPLOAD_TEMP_DIR``) that fills up stops the upload the same way, its temporary file
closed and deleted; the view then answers 507.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
from typing import Any, NoReturn

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler
from django.http.multipartparser import MultiPartParserError

from extadmin.packaging import NoSpace, Refusal, TooLarge
from extadmin.packaging.errors import shown

# What Django raises while reading a request's body: each is a refusal of the request, not a 500.
UNREADABLE_BODY = (TooManyFilesSent, TooManyFieldsSent, RequestDataTooBig, MultiPartParserError)
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def upload_folder_full() -> NoSpace:
    return NoSpace("upload", "the upload folder is full (no space left on device); nothing was kept")


def body_refusal(exc: Exception) -> Refusal:
    """The refusal for one of ``UNREADABLE_BODY``, naming the limit the request went over."""
    if isinstance(exc, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        return Refusal("upload", f"more than {limit} files in one upload; send at most {limit} at once (or a bundle)")
    if isinstance(exc, TooManyFieldsSent):
        return Refusal("request", f"more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} form fields in one request")
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return TooLarge("request", f"the form fields are larger than the limit of {limit} bytes (files aside)")
    return Refusal("request", f"the request body cannot be read ({shown(str(exc))})")


class HashingUploadHandler(TemporaryFileUploadHandler):
    def __init__(self, request: Any = None) -> None:
        super().__init__(request)
        self.received = 0
        self.declared_too_large = False

    def handle_raw_input(
        self, input_data: Any, META: Any, content_length: int, boundary: Any, encoding: Any = None
    ) -> None:
        self.request.upload_too_large = False  # type: ignore[union-attr]
        self.request.upload_folder_full = False  # type: ignore[union-attr]
        self.received = 0
        if content_length and content_length > settings.EXTADMIN_MAX_UPLOAD_BYTES + 64 * 1024:
            # Known too large: stop at the first file, before a byte of it is stored. Not here: a
            # StopUpload raised from handle_raw_input escapes Django's parser (a 500 instead of a
            # 413), and the form fields before the file (the CSRF token) would go unread.
            self.request.upload_too_large = True  # type: ignore[union-attr]

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        if self.request.upload_too_large:  # type: ignore[union-attr]
            raise StopUpload(connection_reset=True)
        try:
            super().new_file(*args, **kwargs)
        except OSError as exc:
            self._stop_when_full(exc)
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
        try:
            self.file.write(raw_data)
        except OSError as exc:
            self._stop_when_full(exc)

    def file_complete(self, file_size: int) -> TemporaryUploadedFile | None:
        try:
            uploaded = super().file_complete(file_size)  # flushes the last buffered bytes
        except OSError as exc:
            self._stop_when_full(exc)
        if uploaded is not None:
            uploaded.sha256 = self.digest.hexdigest()  # type: ignore[attr-defined]
        return uploaded  # type: ignore[return-value]

    def _stop_when_full(self, exc: OSError) -> NoReturn:
        """A full upload folder stops the upload: the temporary file closed (and so deleted), the
        view told. Any other error is not ours to name and goes on up."""
        if exc.errno not in _DISK_FULL:
            raise exc
        self.request.upload_folder_full = True  # type: ignore[union-attr]
        upload = getattr(self, "file", None)
        if upload is not None:
            with contextlib.suppress(OSError):  # closing flushes, and the flush fails on a full disk
                upload.close()  # deletes it
        raise StopUpload(connection_reset=True) from exc
