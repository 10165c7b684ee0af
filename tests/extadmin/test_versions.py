"""Version history: an upgrade keeps the previous archive in the database, byte for byte, for rollback."""
from __future__ import annotations

import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from extadmin.archive import ArchiveIncomplete
from extadmin.models import Archive, ArchiveChunk, RetainedVersion
from extadmin.removal import package_remove
from extadmin.versions import package_versions, retained_copy_to, retained_version
from tests.extadmin.conftest import import_path, sha256_of


@pytest.mark.django_db
def test_it_retains_the_previous_version_on_upgrade_and_streams_it_byte_identical(node_storage, make_package):
    v1, v2 = make_package("Alpha", "1.0.0"), make_package("Alpha", "2.0.0")
    import_path(v1)
    assert not RetainedVersion.objects.exists()  # a first import keeps nothing more than before
    (result,) = import_path(v2)

    retained = retained_version("Alpha", sha256_of(v1))
    assert retained is not None
    assert (retained.version, retained.size, retained.imported_on_node) == ("1.0.0", v1.stat().st_size, "web")
    # The chunks moved, they were not copied: the current archive's rows and the retained ones add up.
    assert ArchiveChunk.objects.filter(retained=retained).count() == retained.chunk_count
    assert ArchiveChunk.objects.filter(package=result.package).count() == Archive.objects.get().chunk_count
    out = io.BytesIO()
    assert retained_copy_to(version_id=retained.pk, out=out, expected_sha256=sha256_of(v1)) == v1.stat().st_size
    assert out.getvalue() == v1.read_bytes()
    versions = package_versions(package=result.package)
    assert [(v.version, v.current) for v in versions] == [("2.0.0", True), ("1.0.0", False)]


@pytest.mark.django_db
def test_it_moves_the_previous_chunks_with_one_update_not_through_python(node_storage, make_package):
    import_path(make_package("Alpha", "1.0.0"))
    with CaptureQueriesContext(connection) as queries:
        import_path(make_package("Alpha", "2.0.0"))
    moves = [q["sql"] for q in queries if q["sql"].startswith('UPDATE "extadmin_archivechunk"')]
    assert len(moves) == 1 and '"retained_id"' in moves[0]
    assert not [q for q in queries if 'FROM "extadmin_archivechunk"' in q["sql"] and "SELECT" in q["sql"][:10]]


@pytest.mark.django_db
def test_it_keeps_no_new_version_for_the_same_bytes_again(node_storage, make_package):
    v1 = make_package("Alpha", "1.0.0")
    import_path(v1)
    import_path(v1)
    assert not RetainedVersion.objects.exists()


@pytest.mark.django_db
def test_it_prunes_the_oldest_beyond_keep_versions_counting_the_current(node_storage, make_package, settings):
    settings.EXTADMIN_KEEP_VERSIONS = 3
    for version in ("1.0.0", "1.1.0", "1.2.0", "2.0.0"):
        import_path(make_package("Alpha", version))
    assert list(RetainedVersion.objects.values_list("version", flat=True)) == ["1.2.0", "1.1.0"]
    assert ArchiveChunk.objects.filter(package=None).count() == sum(
        RetainedVersion.objects.values_list("chunk_count", flat=True)
    )


@pytest.mark.django_db
def test_it_refuses_a_retained_stream_that_does_not_match_its_checksum(node_storage, make_package):
    v1 = make_package("Alpha", "1.0.0")
    import_path(v1)
    import_path(make_package("Alpha", "2.0.0"))
    retained = RetainedVersion.objects.get()
    ArchiveChunk.objects.filter(retained=retained, seq=0).update(data=b"planted")
    with pytest.raises(ArchiveIncomplete, match="checksum mismatch"):
        retained_copy_to(version_id=retained.pk, out=io.BytesIO(), expected_sha256=retained.sha256)


@pytest.mark.django_db
def test_it_deletes_the_retained_versions_with_the_package(node_storage, make_package):
    import_path(make_package("Alpha", "1.0.0"))
    import_path(make_package("Alpha", "2.0.0"))
    package_remove(name="Alpha")
    assert not RetainedVersion.objects.exists()
    assert not ArchiveChunk.objects.exists()
