"""The package zip in the database, as fixed-size chunks: written from a file, read as a stream.

Never the whole zip in memory and never one giant bytea: one chunk at a time goes in or out, which
keeps memory flat in the package's size and works the same on SQLite and PostgreSQL.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import psycopg
from django.conf import settings
from django.db import connection

from extadmin.models import Archive, ArchiveChunk, ExtensionPackage, StagedArchive


@dataclass(frozen=True)
class Staged:
    """A zip's chunks already sent in this transaction by ``extadmin.archive_ahead``."""

    staged_id: int
    chunk_count: int
    chunk_size: int
    size: int  # the bytes sent: step 4 uses them only if they are the whole file it stores


def archive_write(
    *, package: ExtensionPackage, path: Path, sha256: str, size: int, manifest: list[list],
    staged: Staged | None = None,
) -> Archive:
    """Store ``path`` as chunks of ``package``, then the ``Archive`` row that marks it complete.

    ``staged``: the chunks were sent already, in this transaction: they become the package's
    (one UPDATE, no byte moves) instead of being sent again.
    Runs inside the caller's transaction: the archive appears to other nodes only on commit.
    """
    chunk_size = settings.EXTADMIN_CHUNK_BYTES
    ArchiveChunk.objects.filter(package=package).delete()
    Archive.objects.filter(package=package).delete()
    if staged is not None and staged.size == size:
        ArchiveChunk.objects.filter(staged_id=staged.staged_id).update(package=package, staged=None)
        StagedArchive.objects.filter(pk=staged.staged_id).delete()
        chunk_size, count = staged.chunk_size, staged.chunk_count
    else:
        staged_discard(staged)
        with path.open("rb") as f:
            if connection.vendor == "postgresql":
                count = copy_chunks_postgresql("package_id", package.pk, f, chunk_size)
            else:
                count = _insert_chunks(package.pk, f, chunk_size)
    return Archive.objects.create(
        package=package, sha256=sha256, size=size, chunk_size=chunk_size, chunk_count=count,
        manifest=manifest,
    )


def staged_discard(staged: Staged | None) -> None:
    """Chunks sent ahead that step 4 does not use (the bytes are a retained version's already)."""
    if staged is not None:
        ArchiveChunk.objects.filter(staged_id=staged.staged_id).delete()
        StagedArchive.objects.filter(pk=staged.staged_id).delete()


def copy_chunks_postgresql(
    owner: str, owner_id: int, f: BinaryIO, chunk_size: int, *, stop: Callable[[], bool] | None = None,
) -> int:
    """Stream chunks with COPY: one round trip for the whole archive instead of one per chunk.

    ``owner``: ``package_id``, or ``staged_id`` for ``extadmin.archive_ahead``, whose ``stop``
    ends the COPY early (the import was refused: its transaction is rolled back anyway).

    Binary COPY: the bytes go over the wire as they are. Text COPY would escape every byte of the
    bytea as hex (twice the traffic, and the server parses it back), which made this step 2.5×
    slower than the raw COPY of the same file.
    """
    if owner not in ("package_id", "staged_id"):
        raise ValueError(f"chunks are written for package_id or staged_id, not {owner!r}")
    table = ArchiveChunk._meta.db_table
    count = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg 3 cursor under Django's wrapper
        with raw.copy(f"COPY {table} ({owner}, seq, data) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "int4", "bytea"])  # bigint FK, integer seq, bytea: the table's types
            while (stop is None or not stop()) and (block := f.read(chunk_size)):
                copy.write_row((owner_id, count, block))
                count += 1
    return count


def _insert_chunks(package_id: int, f: BinaryIO, chunk_size: int) -> int:
    """One INSERT per chunk through the driver's own cursor, not Django's.

    With DEBUG on (the default outside production) Django's cursor keeps every statement with its
    parameters, rendered as text, in ``connection.queries``: through the ORM, the whole zip would
    stay in memory several times over until the process ends.
    """
    insert = f"INSERT INTO {ArchiveChunk._meta.db_table} (package_id, seq, data) VALUES (%s, %s, %s)"  # noqa: S608
    count = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor
        while block := f.read(chunk_size):
            raw.execute(insert, (package_id, count, block))
            count += 1
    return count


def archive_stream(*, package_id: int) -> Iterator[bytes]:
    """Yield the package's zip chunk by chunk, in order, one row in memory at a time."""
    archive = Archive.objects.get(package_id=package_id)
    yield from chunks_stream(owner="package_id", owner_id=package_id, chunk_count=archive.chunk_count)


# The two owners a chunk row can have: the package's current archive, or one retained version.
CHUNK_OWNERS = ("package_id", "retained_id")


def chunks_stream(*, owner: str, owner_id: int, chunk_count: int) -> Iterator[bytes]:
    """Yield the chunks ``owner`` (one of ``CHUNK_OWNERS``) = ``owner_id`` holds, in order, one row at a time."""
    if owner not in CHUNK_OWNERS:
        raise ValueError(f"chunks belong to one of {CHUNK_OWNERS}, not {owner!r}")
    if connection.vendor == "postgresql":
        yield from _stream_chunks_postgresql(owner, owner_id, chunk_count)
        return
    for seq in range(chunk_count):
        data = ArchiveChunk.objects.filter(**{owner: owner_id, "seq": seq}).values_list("data", flat=True).first()
        if data is None:
            raise ArchiveIncomplete(f"chunk {seq} of {chunk_count} is missing")
        yield bytes(data)


def _stream_chunks_postgresql(owner: str, owner_id: int, chunk_count: int) -> Iterator[bytes]:
    """Every chunk in one ``COPY … TO STDOUT`` in the binary format: one query, one snapshot.

    The bytea arrives as it is (through the ORM it came back hex-escaped: twice its size on the
    wire, then decoded into a third copy). One statement instead of one per chunk: the server
    streams the next chunk while this process hashes and writes the last, instead of waiting for a
    round trip, a parse and a plan per chunk; and every chunk comes from one snapshot. The rows
    arrive one at a time, so memory stays flat in the archive's size.
    """
    table = ArchiveChunk._meta.db_table
    connection.ensure_connection()
    # Django's cursors cannot run COPY; a plain psycopg cursor on the same connection (so the
    # same transaction) can.
    query = f"COPY (SELECT seq, data FROM {table} WHERE {owner} = %s ORDER BY seq) TO STDOUT (FORMAT BINARY)"  # noqa: S608 (owner: CHUNK_OWNERS)
    expected = 0
    with psycopg.Cursor(connection.connection) as raw, raw.copy(query, (owner_id,)) as copy:
        copy.set_types(["int4", "bytea"])  # the binary format needs the columns' exact types
        for seq, data in copy.rows():
            if seq != expected or expected == chunk_count:
                break  # a gap (the chunk is missing), or rows past the archive's end
            yield data
            expected += 1
    if expected != chunk_count:
        raise ArchiveIncomplete(f"chunk {expected} of {chunk_count} is missing")


class ArchiveIncomplete(Exception):
    """The archive in the database is missing a chunk or does not match its checksum."""


def archive_copy_to(*, package_id: int, out: BinaryIO, expected_sha256: str) -> int:
    """Write the archive to ``out`` and prove it matches ``expected_sha256``; returns its size."""
    return copy_verified(archive_stream(package_id=package_id), out=out, expected_sha256=expected_sha256)


def copy_verified(blocks: Iterator[bytes], *, out: BinaryIO, expected_sha256: str) -> int:
    """Write ``blocks`` to ``out``, hashing as they go; raises ``ArchiveIncomplete`` unless they
    hash to ``expected_sha256``. Returns the size written."""
    digest = hashlib.sha256()
    size = 0
    # Closed here, not whenever the failure's traceback lets go of it: a stream still open holds its
    # connection mid-statement (a COPY), and the caller's next query (recording the failure) needs it.
    try:
        for block in blocks:
            digest.update(block)
            out.write(block)
            size += len(block)
    finally:
        close = getattr(blocks, "close", None)
        if close is not None:
            close()
    if digest.hexdigest() != expected_sha256:
        raise ArchiveIncomplete(
            f"checksum mismatch: the database holds {digest.hexdigest()[:12]}…, expected {expected_sha256[:12]}…"
        )
    return size
