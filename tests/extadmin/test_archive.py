"""The zip in the database as fixed-size chunks: byte-identical out, memory flat in its size."""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tracemalloc

import pytest
from django.conf import settings

from extadmin.archive import ArchiveIncomplete, archive_copy_to, archive_stream, archive_write
from extadmin.models import Archive, ArchiveChunk, ExtensionPackage
from tests.extadmin.conftest import (
    MiB,
    import_path,
    sha256_of,
    stored_package,
)
from tests.processes import ROOT, child_env


@pytest.mark.django_db
def test_it_round_trips_a_50_mb_archive_byte_identical_with_flat_memory(node_storage, pkgdir):
    path = stored_package(pkgdir / "Big.zip", "Big", 50 * MiB)
    size = path.stat().st_size
    assert size > 50 * MiB
    chunk = settings.EXTADMIN_CHUNK_BYTES

    tracemalloc.start()
    try:
        (result,) = import_path(path)
        _, import_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()

        digest, streamed, largest = hashlib.sha256(), 0, 0
        for block in archive_stream(package_id=result.package.pk):
            digest.update(block)
            streamed += len(block)
            largest = max(largest, len(block))
            del block
        _, stream_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert streamed == size
    assert digest.hexdigest() == sha256_of(path) == result.sha256
    archive = Archive.objects.get(package=result.package)
    assert archive.chunk_count == ArchiveChunk.objects.filter(package=result.package).count() == -(-size // chunk)
    assert largest == chunk
    assert stream_peak < 3 * chunk, f"streaming peaked at {stream_peak / MiB:.1f} MiB"
    assert import_peak < 4 * chunk, f"the import peaked at {import_peak / MiB:.1f} MiB"


@pytest.mark.django_db
def test_it_copies_an_archive_out_and_proves_its_checksum(node_storage, imported, pkgdir):
    package = imported("Alpha")
    out = io.BytesIO()

    written = archive_copy_to(package_id=package.pk, out=out, expected_sha256=package.sha256)

    assert written == package.size
    assert hashlib.sha256(out.getvalue()).hexdigest() == package.sha256
    assert out.getvalue() == (pkgdir / "Alpha-1.0.0.zip").read_bytes()


@pytest.mark.django_db
def test_it_refuses_an_archive_whose_bytes_do_not_match_its_checksum(node_storage, imported):
    package = imported("Alpha")
    first = ArchiveChunk.objects.get(package=package, seq=0)
    data = bytearray(first.data)
    data[0] ^= 0xFF
    ArchiveChunk.objects.filter(pk=first.pk).update(data=bytes(data))

    with pytest.raises(ArchiveIncomplete, match="checksum mismatch"):
        archive_copy_to(package_id=package.pk, out=io.BytesIO(), expected_sha256=package.sha256)


@pytest.mark.django_db
def test_it_refuses_an_archive_with_a_missing_chunk(node_storage, imported, settings):
    settings.EXTADMIN_CHUNK_BYTES = 1024
    package = imported("Alpha")
    assert package.archive.chunk_count > 2
    ArchiveChunk.objects.filter(package=package, seq=1).delete()

    with pytest.raises(ArchiveIncomplete, match="chunk 1 of"):
        list(archive_stream(package_id=package.pk))


@pytest.mark.django_db
def test_it_replaces_the_chunks_when_an_archive_is_written_again(node_storage, imported, pkgdir, settings):
    settings.EXTADMIN_CHUNK_BYTES = 1000
    package = imported("Alpha")
    smaller = stored_package(pkgdir / "small.zip", "Alpha", 10)

    archive_write(package=package, path=smaller, sha256=sha256_of(smaller), size=smaller.stat().st_size, manifest=[])

    assert ArchiveChunk.objects.filter(package=package).count() == Archive.objects.get(package=package).chunk_count
    out = io.BytesIO()
    archive_copy_to(package_id=package.pk, out=out, expected_sha256=sha256_of(smaller))
    assert out.getvalue() == smaller.read_bytes()


@pytest.mark.django_db
def test_it_stores_an_empty_file_tail_exactly(node_storage, pkgdir, settings):
    """A zip whose size is an exact multiple of the chunk size: no empty trailing chunk."""
    path = stored_package(pkgdir / "Even.zip", "Even", 3000)
    settings.EXTADMIN_CHUNK_BYTES = path.stat().st_size // 2 if path.stat().st_size % 2 == 0 else path.stat().st_size
    (result,) = import_path(path)

    archive = result.package.archive
    assert archive.chunk_count * archive.chunk_size == archive.size
    assert b"".join(archive_stream(package_id=result.package.pk)) == path.read_bytes()


def _peak_rss_mib(args: list[str], env: dict[str, str]) -> float:
    """Run ``manage.py args`` and return the child's peak resident memory, from the kernel's accounting."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    return usage.ru_maxrss / 1024  # KiB on Linux


@pytest.mark.django_db(transaction=True)
def test_it_imports_a_large_zip_through_the_cli_without_holding_it_in_memory(node_storage, pkgdir):
    """The issue's bar: peak RSS grows far less than the file (here 120 MB against a 40 MiB budget)."""
    path = stored_package(pkgdir / "Huge.zip", "Huge", 120 * MiB)
    env = child_env(EXTADMIN_NODE="web", EXTADMIN_STORAGE=str(node_storage.root))

    baseline = _peak_rss_mib(["list_extensions"], env)
    peak = _peak_rss_mib(["import_extension", str(path)], env)

    assert peak - baseline < 40, f"the import peaked at {peak:.0f} MiB against {baseline:.0f} MiB for a listing"
    package = ExtensionPackage.objects.get(name="Huge")
    assert package.sha256 == sha256_of(path)
    digest = hashlib.sha256()
    for block in archive_stream(package_id=package.pk):
        digest.update(block)
    assert digest.hexdigest() == package.sha256


class _FailingWriter(io.BytesIO):
    """A disk that fills up after the first block."""

    def write(self, data) -> int:  # type: ignore[no-untyped-def,override]
        if self.tell():
            raise OSError(28, "No space left on device")
        return super().write(data)


@pytest.mark.django_db
def test_a_copy_that_fails_midway_leaves_the_connection_ready_for_the_next_query(node_storage, imported, settings):
    """The node records the failure on the same connection the stream used (PostgreSQL: one COPY)."""
    settings.EXTADMIN_CHUNK_BYTES = 1024
    package = imported("Alpha")
    assert package.archive.chunk_count > 2

    with pytest.raises(OSError, match="No space left"):
        archive_copy_to(package_id=package.pk, out=_FailingWriter(), expected_sha256=package.sha256)

    assert ExtensionPackage.objects.filter(pk=package.pk).exists()
    out = io.BytesIO()
    archive_copy_to(package_id=package.pk, out=out, expected_sha256=package.sha256)
    assert hashlib.sha256(out.getvalue()).hexdigest() == package.sha256


@pytest.mark.django_db
def test_it_streams_only_the_archive_s_own_chunks_in_order(node_storage, imported, settings):
    """A row past the archive's end (left by nobody knows what) is not part of the zip."""
    settings.EXTADMIN_CHUNK_BYTES = 1024
    package = imported("Alpha")
    count = package.archive.chunk_count
    ArchiveChunk.objects.create(package=package, seq=count, data=b"junk")

    out = io.BytesIO()
    archive_copy_to(package_id=package.pk, out=out, expected_sha256=package.sha256)

    assert hashlib.sha256(out.getvalue()).hexdigest() == package.sha256
