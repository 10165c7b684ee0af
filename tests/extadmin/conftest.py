"""Helpers for the import, removal, archive, command and admin tests.

Everything here builds real files and reads real rows and folders; nothing is mocked. The
hostile-zip corpus is built byte by byte (zipfile, then patched headers) so each case is exactly
the shape reliability.md names.
"""
from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import stat
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.db import connection
from django.db.backends.signals import connection_created

from extadmin.importing import ImportItem, ImportResult, package_import
from extadmin.models import Archive, ArchiveChunk, Entity, ExtensionPackage
from extadmin.operations import Actor
from extadmin.storage import NodeStorage
from nodes.models import SyncState
from tests.disk import leftovers
from tests.packages import build_package, folder_files, metadata_xml, zip_files
from tests.zipcraft import central_records, patch_entry, raw_entry, write_zip

MiB = 1024 * 1024
FAULT_POINTS = ["import.after_checksum", "import.after_unzip", "import.after_persist", "import.after_archive"]
FAULT_STEPS = {
    "import.after_checksum": "checksum",
    "import.after_unzip": "unzip",
    "import.after_persist": "persist",
    "import.after_archive": "archive",
}


# --- state of the world ---------------------------------------------------------------------


def row_counts() -> dict[str, int]:
    """Rows in every table of the extadmin and nodes apps."""
    return {
        model._meta.label: model.objects.count()
        for app in ("extadmin", "nodes")
        for model in apps.get_app_config(app).get_models()
    }


def nonzero_rows(*, ignore: tuple[str, ...] = ()) -> dict[str, int]:
    return {label: n for label, n in row_counts().items() if n and label not in ignore}


def assert_nothing_of(storage: NodeStorage, name: str) -> None:
    """No trace of ``name``: no rows, no chunks, no folder, no ``.chk``, no staging/retired files."""
    assert not ExtensionPackage.objects.filter(name=name).exists()
    assert not Entity.objects.filter(package__name=name).exists()
    assert not ArchiveChunk.objects.filter(package__name=name).exists()
    assert not Archive.objects.filter(package__name=name).exists()
    assert not SyncState.objects.filter(package_name=name).exists()
    assert not storage.package_dir(name).exists()
    assert not list(storage.root.rglob(f"{name}.chk"))
    assert leftovers(storage) == []


def bundle_temp_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("extadmin-bundle-*")}


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own temp folder, so "no temp file left behind" is not confused by other processes."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


# --- shared checks ----------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def assert_installed(storage: NodeStorage, path: Path, name: str, version: str) -> ExtensionPackage:
    """``name`` is installed from ``path``: exact files on disk, ``.chk``, row, archive, node state."""
    digest = sha256_of(path)
    folder = storage.package_dir(name)
    assert storage.chk_path(name).read_text().strip() == digest
    assert folder_files(folder, skip=f"{name}.chk") == zip_files(path)
    package = ExtensionPackage.objects.get(name=name)
    assert (package.version, package.sha256, package.size) == (version, digest, path.stat().st_size)
    assert package.state == ExtensionPackage.State.ACTIVE
    archive = Archive.objects.get(package=package)
    assert (archive.sha256, archive.size) == (digest, path.stat().st_size)
    assert archive.chunk_count == ArchiveChunk.objects.filter(package=package).count()
    state = SyncState.objects.get(node__name="web", package_name=name)
    assert (state.state, state.installed_version, state.installed_sha256) == ("installed", version, digest)
    return package


def snapshot(storage: NodeStorage) -> dict[str, bytes]:
    """Every package file of a node's storage, staging and retired included.

    The node's own bookkeeping directly under ``.extadmin/`` (its lock file, its ownership
    marker) is left out: it is about the node, not about any package.
    """
    if not storage.root.exists():
        return {}
    return {
        str(p.relative_to(storage.root)): p.read_bytes()
        for p in storage.root.rglob("*")
        if p.is_file() and p.parent != storage.work
    }


def stored_package(path: Path, name: str, payload_bytes: int) -> Path:
    """A package whose bulk is random (incompressible) bytes, stored rather than deflated."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.xml", metadata_xml(name))
        with zf.open("lib/payload.bin", "w", force_zip64=False) as out:
            left = payload_bytes
            while left:
                block = os.urandom(min(MiB, left))
                out.write(block)
                left -= len(block)
    return path


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


class DatabaseWriteLock:
    """Hold the database's write lock from a second connection, so a competing import pauses there."""

    def __enter__(self) -> DatabaseWriteLock:
        if connection.vendor == "postgresql":
            import psycopg

            self.conn = psycopg.connect(**connection.get_connection_params())
            self.conn.execute("LOCK TABLE extadmin_operation IN ACCESS EXCLUSIVE MODE")
        else:
            self.conn = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.rollback()
        self.conn.close()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB file system (tmpfs), so a write fails with ENOSPC as on a full disk."""
    import shutil
    import subprocess

    mountpoint = tmp_path / "tiny-disk"
    mountpoint.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


# --- importing ------------------------------------------------------------------------------


def import_path(path: Path, **kwargs: Any) -> list[ImportResult]:
    """Import one package file on this process's node, as the services do."""
    return package_import(items=[ImportItem(path=path)], actor=kwargs.pop("actor", Actor(via="cli")), **kwargs)


@pytest.fixture
def make_package(pkgdir: Path) -> Callable[..., Path]:
    """``make_package(name, version, ...)`` → a real package zip under the test's package folder."""

    def make(name: str, version: str = "1.0.0", **kwargs: Any) -> Path:
        return build_package(pkgdir, name, version, **kwargs)

    return make


@pytest.fixture
def imported(node_storage: NodeStorage, make_package: Callable[..., Path]) -> Callable[..., ExtensionPackage]:
    """``imported(name, version, ...)`` → build and import a package, return its row."""

    def do(name: str, version: str = "1.0.0", **kwargs: Any) -> ExtensionPackage:
        (result,) = import_path(make_package(name, version, **kwargs))
        assert result.package is not None
        return result.package

    return do


# --- a killed database connection (no mock: the real connection is cut under Django) ---------


@contextmanager
def connection_killed_on(table: str) -> Iterator[list[str]]:
    """Kill the database connection at the first statement on ``table`` inside a transaction.

    PostgreSQL: the server terminates the backend (``pg_terminate_backend`` from a second
    connection), exactly what an operator's kill or a failover does. SQLite: the underlying
    sqlite3 connection is closed. Either way the statement then fails in the database driver.
    It watches this thread's connection and every one opened meanwhile (the import's transaction
    may run on a connection of its own: ``extadmin.archive_ahead``).
    Use with ``django_db(transaction=True)``: the test's own transaction could not survive it.
    """
    fired: list[str] = []
    target = re.compile(rf'^(SELECT .*? FROM|INSERT INTO|UPDATE|DELETE FROM) "{table}"', re.S)

    def kill(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        conn = context["connection"]
        if not fired and conn.in_atomic_block and target.match(sql):
            fired.append(sql)
            if conn.vendor == "postgresql":
                import psycopg

                pid = conn.connection.info.backend_pid
                with psycopg.connect(**conn.get_connection_params(), autocommit=True) as other:
                    other.execute("SELECT pg_terminate_backend(%s)", [pid])
            else:
                conn.connection.close()
        return execute(sql, params, many, context)

    def watch(sender: Any, connection: Any, **kwargs: Any) -> None:
        if kill not in connection.execute_wrappers:
            connection.execute_wrappers.append(kill)

    connection_created.connect(watch)
    try:
        with connection.execute_wrapper(kill):
            yield fired
    finally:
        connection_created.disconnect(watch)
        if fired:
            connection.close()  # whatever the code under test did, the next test gets a fresh connection


# --- hostile zips -----------------------------------------------------------------------------

def good_entries(name: str = "Hostile", version: str = "1.0.0") -> list[tuple[str | zipfile.ZipInfo, bytes]]:
    return [
        ("metadata.xml", metadata_xml(name, version).encode()),
        ("lib/hostile.jar", os.urandom(2048)),
    ]


def _bad_metadata(path: Path, text: str) -> Path:
    return write_zip(path, [("metadata.xml", text.encode()), ("lib/a.jar", b"jar")])


def _overlapping(path: Path) -> Path:
    write_zip(path, [*good_entries(), ("a.txt", b"A" * 5000), ("b.txt", b"B" * 5000)])
    data = path.read_bytes()
    first = struct.unpack_from("<L", data, central_records(data)[2] + 42)[0]
    return patch_entry(path, "b.txt", offset=first)


def _lying_size(path: Path) -> Path:
    write_zip(path, [*good_entries(), ("lib/big.bin", b"\x00" * 100_000)])
    return patch_entry(path, "lib/big.bin", size=1000)


def _short_size(path: Path) -> Path:
    write_zip(path, [*good_entries(), ("lib/short.bin", os.urandom(1000))])
    return patch_entry(path, "lib/short.bin", size=5000)


def _bad_crc(path: Path) -> Path:
    write_zip(path, [*good_entries(), ("lib/data.bin", os.urandom(4096))])
    return patch_entry(path, "lib/data.bin", crc=0xDEADBEEF)


def _encrypted(path: Path) -> Path:
    write_zip(path, [*good_entries(), ("lib/secret.bin", b"secret" * 100)])
    return patch_entry(path, "lib/secret.bin", flags=0x1)


def _truncated(path: Path) -> Path:
    write_zip(path, [*good_entries(), ("lib/more.bin", os.urandom(8192))])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _billion_laughs() -> str:
    lol = "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    return (
        f'<?xml version="1.0"?><!DOCTYPE Entities [<!ENTITY lol0 "lol">{lol}]>'
        '<Entities><ExtensionPackages><ExtensionPackage name="Laughs" packageVersion="1.0.0" '
        'description="&lol9;"/></ExtensionPackages></Entities>'
    )


def _with(extra: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Callable[[Path], Path]:
    return lambda path: write_zip(path, [*good_entries(), *extra])


_PKG = '<Entities><ExtensionPackages><ExtensionPackage {}/></ExtensionPackages></Entities>'

# label → (builder, what the error line must mention). Settings for the limits cases come from
# the ``hostile_limits`` fixture (small limits, so the corpus stays small on disk).
HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "zip slip ../x": (_with([("../x.txt", b"x")]), "escapes the package folder"),
    "zip slip a/../../x": (_with([("a/../../x.txt", b"x")]), "escapes the package folder"),
    "absolute /abs": (_with([("/tmp/abs.txt", b"x")]), "absolute path"),
    "drive C:\\x": (_with([("C:\\x.txt", b"x")]), "backslash"),
    "backslash ..\\x": (_with([("..\\x.txt", b"x")]), "backslash"),
    "NUL in name": (_with([(raw_entry("lib/a\x00.txt"), b"x")]), "control character"),
    "control char in name": (_with([(raw_entry("lib/a\x1b[31m.txt"), b"x")]), "control character"),
    "over-long name": (_with([("lib/" + "a/" * 600 + "x.txt", b"x")]), "longer than"),
    "over-long component": (_with([("lib/" + "a" * 300 + ".txt", b"x")]), "longer than 255"),
    "symlink": (_with([(raw_entry("lib/link", mode=stat.S_IFLNK | 0o777), b"/etc/passwd")]), "symbolic link"),
    "FIFO": (_with([(raw_entry("lib/fifo", mode=stat.S_IFIFO | 0o644), b"")]), "FIFO"),
    "device": (_with([(raw_entry("lib/dev", mode=stat.S_IFCHR | 0o644), b"")]), "device"),
    "zip bomb ratio": (_with([("lib/zeros.bin", b"\x00" * (8 * 1024 * 1024))]), "zip bomb"),
    "lying sizes": (_lying_size, "lib/big.bin"),
    "size that lies short": (_short_size, "ends early"),
    "overlapping entries": (_overlapping, "overlaps"),
    "too many entries": (_with([(f"lib/f{i}.txt", b"x") for i in range(60)]), "more than the limit"),
    "unpacked size over limit": (_with([("lib/big.bin", os.urandom(300_000))]), "more than the limit"),
    "duplicate names": (_with([("lib/dup.txt", b"1"), ("lib/dup.txt", b"2")]), "more than once"),
    "file under a file": (_with([("lib/x", b"1"), ("lib/x/y", b"2")]), "which is a file"),
    "<name>.chk collision": (_with([("Hostile.chk", b"0" * 64)]), "Hostile.chk"),
    "encrypted": (_encrypted, "encrypted"),
    "unsupported compression": (_with([(raw_entry("lib/b.bin", method=zipfile.ZIP_BZIP2), b"b" * 500)]), "compression"),
    "not a zip": (lambda p: (p.write_text("this is not a zip\n"), p)[1], "not a zip"),
    "empty file": (lambda p: (p.write_bytes(b""), p)[1], "empty"),
    "empty zip": (lambda p: write_zip(p, []), "empty zip"),
    "truncated": (_truncated, "truncated"),
    "bad CRC": (_bad_crc, "CRC"),
    "no metadata.xml": (lambda p: write_zip(p, [("lib/a.jar", b"jar")]), "metadata.xml is missing"),
    "malformed XML": (lambda p: _bad_metadata(p, "<Entities><ExtensionPackages>"), "malformed XML"),
    "DTD / XXE": (
        lambda p: _bad_metadata(
            p,
            '<?xml version="1.0"?><!DOCTYPE Entities [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            '<Entities><ExtensionPackages><ExtensionPackage name="Xxe" packageVersion="1.0.0" '
            'description="&xxe;"/></ExtensionPackages></Entities>',
        ),
        "DTD",
    ),
    "billion laughs": (lambda p: _bad_metadata(p, _billion_laughs()), "DTD"),
    "no ExtensionPackage": (
        lambda p: _bad_metadata(p, "<Entities><ExtensionPackages/></Entities>"),
        "no <ExtensionPackage>",
    ),
    "two ExtensionPackages": (
        lambda p: _bad_metadata(
            p,
            '<Entities><ExtensionPackages><ExtensionPackage name="A" packageVersion="1.0.0"/>'
            '<ExtensionPackage name="B" packageVersion="1.0.0"/></ExtensionPackages></Entities>',
        ),
        "2 <ExtensionPackage> elements",
    ),
    "missing name": (lambda p: _bad_metadata(p, _PKG.format('packageVersion="1.0.0"')), "has no name"),
    "missing version": (lambda p: _bad_metadata(p, _PKG.format('name="NoVersion"')), "has no packageVersion"),
    "unsafe name ../x": (
        lambda p: _bad_metadata(p, _PKG.format('name="../x" packageVersion="1.0.0"')),
        "not a safe folder name",
    ),
    "unorderable version": (
        lambda p: _bad_metadata(p, _PKG.format('name="Snap" packageVersion="1.0-SNAPSHOT"')),
        "cannot be ordered",
    ),
    "depends on itself": (
        lambda p: _bad_metadata(p, _PKG.format('name="Selfish" packageVersion="1.0.0" dependsOn="Selfish:1.0.0"')),
        "depends on itself",
    ),
    "directory with data": (_with([(raw_entry("lib/d/", mode=stat.S_IFDIR | 0o755), b"data")]), "carries data"),
}


@dataclass
class HostileZip:
    label: str
    path: Path
    expect: str


@pytest.fixture
def hostile_limits(settings: Any) -> None:
    """Small limits for the corpus: 50 entries, 256 KiB unpacked (the defaults need GiB-sized zips)."""
    settings.EXTADMIN_MAX_ENTRIES = 50
    settings.EXTADMIN_MAX_UNPACKED_BYTES = 256 * 1024


HOSTILE_LIMITS_ENV = {"EXTADMIN_MAX_ENTRIES": "50", "EXTADMIN_MAX_UNPACKED_BYTES": str(256 * 1024)}


@pytest.fixture
def hostile_zip(request: pytest.FixtureRequest, pkgdir: Path) -> HostileZip:
    label = request.param
    build, expect = HOSTILE[label]
    slug = "".join(c if c.isalnum() else "-" for c in label)
    return HostileZip(label=label, path=build(pkgdir / f"{slug}.zip"), expect=expect)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "hostile_zip" in metafunc.fixturenames:
        metafunc.parametrize("hostile_zip", list(HOSTILE), indirect=True, ids=list(HOSTILE))
