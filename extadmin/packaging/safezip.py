"""Checking and unpacking untrusted zips without trusting anything they declare.

``inspect_zip`` reads only the central directory and the local headers and refuses every shape
listed under "Bad packages" in docs/reliability.md before a single byte is unpacked.
``extract_zip`` then unpacks with its own streaming loop rather than ``ZipFile.extract``: it
counts the bytes the decompressor really produces (a central directory can lie about sizes),
checks every CRC, and creates files with ``O_EXCL | O_NOFOLLOW`` so it can never write through a
link or over an existing file.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import stat
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from extadmin.packaging.errors import Refusal, shown

BLOCK = 1024 * 1024
# Below this size a high compression ratio is normal (XML, JS) and cannot hurt anyone.
RATIO_FLOOR = 1024 * 1024

_LOCAL_HEADER = struct.Struct("<4sHHHHHLLLHH")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_ALLOWED_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
_FLAG_ENCRYPTED = 0x01
_FLAG_STRONG_ENCRYPTION = 0x40
_FLAG_UTF8 = 0x800
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DRIVE_RE = re.compile(r"[A-Za-z]:")
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class Limits:
    max_unpacked_bytes: int = 4 * 1024**3
    max_entries: int = 20_000
    max_ratio: float = 200.0
    max_entities: int = 10_000  # entities metadata.xml may declare
    max_name_length: int = 1024  # whole path, in UTF-8 bytes; each component is capped at 255


@dataclass(frozen=True)
class Member:
    name: str  # normalised relative POSIX path, no trailing slash
    is_dir: bool
    size: int  # declared uncompressed size
    compress_size: int
    crc: int  # declared CRC-32; extraction refuses bytes that do not match it


@dataclass(frozen=True)
class ZipPlan:
    members: tuple[Member, ...]
    total_size: int

    def names(self) -> set[str]:
        """The file names (directories left out)."""
        return {member.name for member in self.members if not member.is_dir}

    def manifest(self) -> list[list]:
        """``[path, size, crc32]`` of every file, under the cleaned name extraction writes it to.

        What a node's folder must hold: built from the plan, never from the zip's raw names, so an
        entry stored as ``./lib//a.jar`` is checked as ``lib/a.jar``, the file every node writes.
        """
        return [[member.name, member.size, member.crc] for member in self.members if not member.is_dir]

    def is_bundle(self) -> bool:
        """A zip of extension zips: no metadata.xml at the root, only ``.zip`` files and their
        detached signatures (``.sig``, paired by ``bundle_signatures``)."""
        files = self.names()
        return bool(files) and "metadata.xml" not in files and all(
            name.lower().endswith((".zip", ".sig")) for name in files
        )

    def bundle_signatures(self) -> dict[str, str]:
        """Each signed member's signature entry: ``A.zip`` → ``A.zip.sig``, side by side in a bundle.

        A signature covers exactly one member, the one it is named after; a ``.sig`` entry with no
        such ``.zip`` beside it, or a second one for the same member, is refused naming the entry
        (it would otherwise be ignored, and the operator believe the member signed).
        """
        files = [member.name for member in self.members if not member.is_dir]
        zips = {name for name in files if name.lower().endswith(".zip")}
        signatures: dict[str, str] = {}
        for name in files:
            if not name.lower().endswith(".sig"):
                continue
            member = name[:-4]
            if member not in zips:
                raise _refuse(f"entry '{shown(name)}' is a signature with no '{shown(member)}' beside it in the bundle")
            if member in signatures:
                raise _refuse(f"entry '{shown(name)}' is a second signature of '{shown(member)}'")
            signatures[member] = name
        return signatures


def _refuse(reason: str) -> Refusal:
    return Refusal("validate", reason)


# --- inspection --------------------------------------------------------------------------------


def inspect_zip(path: Path, *, limits: Limits) -> ZipPlan:
    """Read the central directory and local headers; refuse anything unsafe to unpack."""
    with _open_zip(path, "validate") as archive:
        infos = archive.infolist()
        if not infos:
            raise _refuse("the package is an empty zip")
        if len(infos) > limits.max_entries:
            raise _refuse(f"the package has {len(infos)} entries, more than the limit of {limits.max_entries}")
        members = tuple(_check_entry(info, limits) for info in infos)
        _check_layout(members)
        total = sum(member.size for member in members)
        # Many entries each under RATIO_FLOOR escape the per-entry check (300 files of 1 MiB of
        # zeros in a 340 KB zip), but not the whole package's ratio.
        size = path.stat().st_size
        what = f"the package would unpack to {total} bytes from a zip of {size} bytes"
        check_ratio(total, size, limits=limits, what=what)
        if total > limits.max_unpacked_bytes:
            raise _refuse(
                f"the package would unpack to {total} bytes, more than the limit of {limits.max_unpacked_bytes}"
            )
        # start_dir is where zipfile found the central directory (offset of any prepended data
        # included); every entry's bytes must end before it.
        with path.open("rb") as raw:
            _check_local_headers(raw, infos, members, archive.start_dir)
    return ZipPlan(members=members, total_size=total)


def check_ratio(unpacked: int, packed: int, *, limits: Limits, what: str) -> None:
    """Refuse ``unpacked`` bytes from ``packed`` over the ratio limit, above RATIO_FLOOR (so a tiny
    package may compress as well as it likes). ``what`` says what unpacks to what, for the reason."""
    if unpacked > RATIO_FLOOR and unpacked > packed * limits.max_ratio:
        ratio = unpacked / packed if packed else float("inf")
        raise _refuse(f"{what} (ratio {ratio:.0f}, over {limits.max_ratio:g}); this looks like a zip bomb")


@contextmanager
def _open_zip(path: Path, step: str) -> Iterator[zipfile.ZipFile]:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise Refusal(step, f"the package cannot be read ({exc.strerror})") from None
    if size == 0:
        raise Refusal(step, "the package is an empty file")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError):
        raise Refusal(step, "the package is not a zip archive, or it is truncated") from None
    with archive:
        yield archive


def _check_entry(info: zipfile.ZipInfo, limits: Limits) -> Member:
    """Check one central-directory entry on its own and describe it as a Member."""
    raw_name = info.orig_filename  # .filename is cut at a NUL; the raw name is what we judge
    name, is_dir = _normalise_name(raw_name, limits)
    label = shown(raw_name)
    _check_type(info, label, is_dir)
    if info.flag_bits & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION):
        raise _refuse(f"entry '{label}' is encrypted")
    if info.compress_type not in _ALLOWED_METHODS:
        raise _refuse(
            f"entry '{label}' uses compression method {info.compress_type}; "
            "only stored and deflated entries are supported"
        )
    if is_dir and info.file_size:
        raise _refuse(f"entry '{label}' is a directory but carries data")
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise _refuse(f"entry '{label}' is stored uncompressed but declares two different sizes")
    if info.file_size > RATIO_FLOOR and (
        info.compress_size == 0 or info.file_size / info.compress_size > limits.max_ratio
    ):
        raise _refuse(
            f"entry '{label}' expands {info.file_size} bytes from {info.compress_size} "
            f"(ratio over {limits.max_ratio:g}); this looks like a zip bomb"
        )
    return Member(name=name, is_dir=is_dir, size=info.file_size, compress_size=info.compress_size, crc=info.CRC)


def _normalise_name(raw: str, limits: Limits) -> tuple[str, bool]:
    """Return (normalised relative path, is_dir), refusing any name that could escape or mislead."""
    label = shown(raw)
    if _CONTROL_RE.search(raw):
        raise _refuse(f"entry '{label}' has a control character (or NUL) in its name")
    if "\\" in raw:
        # A backslash is a separator on Windows: 'C:\x' or '..\x' would escape there.
        raise _refuse(f"entry '{label}' has a backslash in its name")
    if raw.startswith("/") or _DRIVE_RE.match(raw):
        raise _refuse(f"entry '{label}' has an absolute path")
    if len(raw.encode("utf-8", "surrogateescape")) > limits.max_name_length:
        raise _refuse(f"entry '{label}' has a name longer than {limits.max_name_length} bytes")
    # Judge whole components: '..' as a component escapes, 'a..b' or '..x' is only a name.
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _refuse(f"entry '{label}' escapes the package folder")
    if not parts:
        raise _refuse(f"entry '{label}' has an empty name")
    if _DRIVE_RE.match(parts[0]):  # './C:x' is 'C:x' once the '.' is dropped: a drive on Windows
        raise _refuse(f"entry '{label}' has an absolute path")
    if any(len(part.encode("utf-8", "surrogateescape")) > 255 for part in parts):
        raise _refuse(f"entry '{label}' has a path component longer than 255 bytes")
    if any(part.endswith((".", " ")) for part in parts):
        # Windows drops a trailing dot or space when it writes the file: that node would hold
        # another name than the manifest says (and 'a.' would land on 'a').
        raise _refuse(f"entry '{label}' has a name that ends with a dot or a space")
    return "/".join(parts), raw.endswith("/")


def _check_type(info: zipfile.ZipInfo, label: str, is_dir: bool) -> None:
    """Only regular files and directories: links, devices, FIFOs and sockets are refused.

    The unix mode sits in the high 16 bits of external_attr. Zips made on Windows or by Java
    leave it zero, which means "a plain entry": the trailing '/' alone says it is a directory.
    """
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == 0 or (kind == stat.S_IFREG and not is_dir) or (kind == stat.S_IFDIR and is_dir):
        return
    if kind == stat.S_IFDIR:
        raise _refuse(f"entry '{label}' is marked as a directory but its name has no trailing '/'")
    if kind == stat.S_IFREG:
        raise _refuse(f"entry '{label}' is marked as a file but its name ends with '/'")
    what = _SPECIAL_KINDS.get(kind, "special file")
    raise _refuse(f"entry '{label}' is a {what}; only files and folders are allowed")


_SPECIAL_KINDS = {
    stat.S_IFLNK: "symbolic link",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFIFO: "FIFO",
    stat.S_IFSOCK: "socket",
}


def _check_layout(members: tuple[Member, ...]) -> None:
    """Refuse names that would land on the same path, or a file that another entry nests under."""
    files: set[str] = set()
    dirs: set[str] = set()
    for member in members:
        if member.name in files or member.name in dirs:
            raise _refuse(f"entry '{shown(member.name)}' appears more than once")
        (dirs if member.is_dir else files).add(member.name)
    for member in members:
        parent = member.name.rpartition("/")[0]
        while parent:
            if parent in files:
                raise _refuse(f"entry '{shown(member.name)}' is inside '{shown(parent)}', which is a file")
            parent = parent.rpartition("/")[0]


def _check_local_headers(
    raw: BinaryIO, infos: list[zipfile.ZipInfo], members: tuple[Member, ...], central_start: int
) -> None:
    """Check every local header and refuse entries whose bytes overlap.

    Overlapping entries are the classic trick behind non-recursive zip bombs: many central
    entries share one compressed stream, so a small file unpacks to gigabytes.
    """
    spans: list[tuple[int, int, str]] = []
    misnamed: list[str] = []
    for info, member in zip(infos, members, strict=True):
        label = shown(info.orig_filename)
        start = info.header_offset
        raw.seek(start)
        header = raw.read(_LOCAL_HEADER.size)
        if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
            raise _refuse(f"entry '{label}' has no valid local header (the zip is damaged)")
        name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
        if raw.read(name_length) != _encoded_name(info):
            misnamed.append(label)
        end = start + _LOCAL_HEADER.size + name_length + extra_length + member.compress_size
        if end > central_start:
            raise _refuse(f"entry '{label}' overlaps the central directory (the zip is damaged or hostile)")
        spans.append((start, end, label))
    spans.sort()
    for (_, previous_end, previous), (start, _, label) in itertools.pairwise(spans):
        if start < previous_end:
            raise _refuse(f"entry '{label}' overlaps entry '{previous}'; this looks like a zip bomb")
    if misnamed:
        # zipfile itself refuses this when opening the entry; refuse it up front. Checked after
        # the overlaps so a shared header is reported as what it is.
        raise _refuse(f"entry '{misnamed[0]}' has a different name in its local header")


def _encoded_name(info: zipfile.ZipInfo) -> bytes:
    encoding = "utf-8" if info.flag_bits & _FLAG_UTF8 else "cp437"
    return info.orig_filename.encode(encoding)


# --- reading and unpacking ---------------------------------------------------------------------


def read_member(path: Path, name: str, *, max_bytes: int) -> bytes:
    """Return one member's bytes (e.g. metadata.xml), refused when larger than ``max_bytes``."""
    chunks: list[bytes] = []
    _stream_member(path, name, chunks.append, max_bytes=max_bytes, step="validate")
    return b"".join(chunks)


def extract_member_to(path: Path, name: str, out: BinaryIO, *, max_bytes: int) -> None:
    """Stream one member (an inner zip of a bundle) into ``out``."""
    _stream_member(path, name, out.write, max_bytes=max_bytes, step="unzip")


def _stream_member(path: Path, name: str, write: Callable[[bytes], object], *, max_bytes: int, step: str) -> None:
    limits = Limits()
    with _open_zip(path, step) as archive:
        matches = [info for info in archive.infolist() if _check_entry(info, limits).name == name]
        if len(matches) != 1 or matches[0].is_dir():
            raise Refusal(step, f"entry '{shown(name)}' is missing from the package")
        info = matches[0]
        if info.file_size > max_bytes:
            raise Refusal(step, f"entry '{shown(name)}' is larger than the limit of {max_bytes} bytes")
        with path.open("rb") as raw:
            for chunk in _entry_chunks(raw, info, step):
                write(chunk)


def extract_zip(
    path: Path,
    dest: Path,
    *,
    plan: ZipPlan,
    limits: Limits,
    skip: Callable[[str], bool] | None = None,
    keep: frozenset[str] = frozenset(),
) -> None:
    """Unpack the files and folders of an inspected zip into the empty folder ``dest``.

    ``skip(name)`` returning True leaves that member out. ``keep`` names files the caller already
    put at the top of ``dest`` (the importer's ``<name>.chk``, written before the unzip step); no
    entry may collide with them. On a refusal ``dest`` is emptied again (but for ``keep``), so
    nothing half-unpacked is left for anyone to pick up; the caller still owns ``dest`` itself.
    """
    # Checked first: on a refusal dest is emptied, which must never touch anything of the caller's.
    if any(child.name not in keep for child in dest.iterdir()):
        raise Refusal("unzip", "the destination folder is not empty")
    if keep & plan.names():
        raise Refusal("unzip", f"entry '{sorted(keep & plan.names())[0]}' collides with a file of extadmin's")
    try:
        _extract(path, dest, plan=plan, limits=limits, skip=skip)
    except Refusal:
        _empty(dest, keep)
        raise
    except OSError as exc:
        _empty(dest, keep)
        raise Refusal("unzip", f"writing the unpacked files failed ({exc.strerror or exc})") from None


# Files are written by this many threads at once: creating a file waits on the file system far
# more than it computes, and inflating and writing release the GIL.
EXTRACT_THREADS = 4
OPEN_AHEAD = 32  # files the one-read unpack has created ahead of the one it writes
# Each writer thread reads and inflates this much at a time: four threads at BLOCK held 8 MiB
# between them at the peak of a 1 GB sync; at a quarter of it, 2 MiB, for no measurable time.
WRITE_BLOCK = 256 * 1024


def _extract(path: Path, dest: Path, *, plan: ZipPlan, limits: Limits, skip: Callable[[str], bool] | None) -> None:
    with _open_zip(path, "unzip") as archive:
        infos = archive.infolist()
        if _members_now(infos, limits) != plan.members:
            raise Refusal("unzip", "the package changed after it was checked")
        wanted = [
            (info, member)
            for info, member in zip(infos, plan.members, strict=True)
            if skip is None or not skip(member.name)
        ]
        _make_dirs(dest, [member for _, member in wanted])
    files = [(info, dest / member.name) for info, member in wanted if not member.is_dir]
    budget = _Budget(limits.max_unpacked_bytes)
    threads = EXTRACT_THREADS if len(files) >= 4 * EXTRACT_THREADS else 1
    failed = _Failed()
    if threads == 1:
        _write_files(path, list(enumerate(files)), budget, failed)
    else:
        indexed = list(enumerate(files))
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="unzip") as pool:
            for group in range(threads):
                pool.submit(_write_files, path, indexed[group::threads], budget, failed)
    failed.reraise()


class _Budget:
    """The unpacked bytes left, shared by the threads that write one package's files."""

    def __init__(self, left: int) -> None:
        self.left = left
        self._lock = threading.Lock()

    def take(self, size: int) -> None:
        with self._lock:
            self.left -= size
            if self.left < 0:
                raise Refusal("unzip", "the package unpacks to more bytes than the configured limit")


class _Failed:
    """The first entry (in the zip's order) that failed: the one a single writer would have
    stopped at, whatever thread found it. Entries after it are no longer written."""

    def __init__(self) -> None:
        self.index: int | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def before(self, index: int) -> bool:
        return self.index is None or index < self.index

    def record(self, index: int, error: BaseException) -> None:
        with self._lock:
            if self.before(index):
                self.index, self.error = index, error

    def reraise(self) -> None:
        if self.error is not None:
            raise self.error


def _write_files(path: Path, files: list[tuple[int, tuple[zipfile.ZipInfo, Path]]], budget: _Budget,
                 failed: _Failed) -> None:
    try:
        with path.open("rb", buffering=256 * 1024) as raw:
            for index, (info, target) in files:
                if not failed.before(index):
                    return
                try:
                    _write_file(raw, info, target, budget)
                except BaseException as exc:  # handed to the caller's thread
                    failed.record(index, exc)
                    return
    except OSError as exc:  # opening the zip itself
        failed.record(-1, exc)


def _members_now(infos: list[zipfile.ZipInfo], limits: Limits) -> tuple[Member, ...] | None:
    """The file's members as they are now; None when they no longer pass the entry checks.

    The plan was made from this file; if it changed since, nothing that was checked still holds.
    """
    try:
        return tuple(_check_entry(info, limits) for info in infos)
    except Refusal:
        return None


def verify_zip(path: Path, *, plan: ZipPlan, limits: Limits) -> None:
    """Read every file's real bytes without writing them: refuse a size that lies, a bad CRC or a
    total over the limit at validation, before anything is written anywhere (and in validate-only).

    ``extract_zip`` checks all of this again while writing: the file may change in between.
    """
    with _open_zip(path, "validate") as archive, path.open("rb", buffering=256 * 1024) as raw:
        budget = limits.max_unpacked_bytes
        for info, member in zip(archive.infolist(), plan.members, strict=True):
            if member.is_dir:
                continue
            for chunk in _entry_chunks(raw, info, "validate"):
                budget -= len(chunk)
                if budget < 0:
                    raise _refuse("the package unpacks to more bytes than the configured limit")


def _make_dirs(dest: Path, members: list[Member]) -> None:
    dirs: set[str] = set()
    for member in members:
        parent = member.name if member.is_dir else member.name.rpartition("/")[0]
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    # Sorted, a parent always comes before its children. mkdir fails on anything already there
    # (a link included), which cannot happen in an empty dest with checked, unique names.
    for name in sorted(dirs):
        os.mkdir(dest / name, 0o755)


def _write_file(raw: BinaryIO, info: zipfile.ZipInfo, target: Path, budget: _Budget) -> None:
    """Write one entry, taking its bytes from the unpacked-bytes budget."""
    fd = os.open(target, _FILE_FLAGS, 0o644)
    try:
        for chunk in _entry_chunks(raw, info, "unzip", block=WRITE_BLOCK):
            budget.take(len(chunk))
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _entry_chunks(raw: BinaryIO, info: zipfile.ZipInfo, step: str, *, block: int = BLOCK) -> Iterator[bytes]:
    """Yield an entry's real decompressed bytes in pieces of at most ``block``, refusing more than
    declared or a bad CRC.

    Reads the compressed bytes straight from the file rather than through ZipFile.open: zipfile
    silently cuts output at the declared size, and we want to know when an entry lies.
    """
    label = shown(info.orig_filename)
    raw.seek(info.header_offset)
    header = raw.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
        raise Refusal(step, f"entry '{label}' has no valid local header (the zip is damaged)")
    name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
    raw.seek(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)

    decompressor = zlib.decompressobj(-zlib.MAX_WBITS) if info.compress_type == zipfile.ZIP_DEFLATED else None
    produced = 0
    crc = 0
    for compressed in _compressed_blocks(raw, info.compress_size, label, step, block):
        for chunk in _inflate(decompressor, compressed, label, step, block):
            produced += len(chunk)
            if produced > info.file_size:
                raise Refusal(step, f"entry '{label}' unpacks to more than the {info.file_size} bytes it declares")
            crc = zlib.crc32(chunk, crc)
            yield chunk
    if (decompressor is not None and not decompressor.eof) or produced != info.file_size:
        raise Refusal(step, f"entry '{label}' is corrupt (it ends early)")
    if crc != info.CRC:
        raise Refusal(step, f"entry '{label}' is corrupt (bad CRC)")


def _compressed_blocks(raw: BinaryIO, size: int, label: str, step: str, block: int) -> Iterator[bytes]:
    while size:
        data = raw.read(min(block, size))
        if not data:
            raise Refusal(step, f"entry '{label}' is corrupt (the zip is truncated)")
        size -= len(data)
        yield data


def _inflate(decompressor: zlib._Decompress | None, data: bytes, label: str, step: str, block: int) -> Iterator[bytes]:
    """Decompress ``data`` in pieces of at most ``block``, so a bomb never sits whole in memory."""
    if decompressor is None:
        yield data
        return
    try:
        piece = decompressor.decompress(data, block)
        while True:
            if piece:
                yield piece
            # A full piece may mean more output is pending even when all input was consumed.
            if not decompressor.unconsumed_tail and len(piece) < block:
                return
            piece = decompressor.decompress(decompressor.unconsumed_tail, block)
    except zlib.error:
        raise Refusal(step, f"entry '{label}' is corrupt (bad compressed data)") from None


def _empty(dest: Path, keep: frozenset[str] = frozenset()) -> None:
    """Remove what an interrupted extraction left in ``dest`` (never following links)."""
    for child in dest.iterdir():
        if child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


# --- one read: hash, check and unpack together -------------------------------------------------

READ_BLOCK = 4 * 1024 * 1024  # the one read of the zip goes in blocks this big


class _OneRead:
    """The zip read front to back exactly once, in big blocks; every byte also goes to SHA-256.

    The hash runs in a thread of its own (``hashlib`` releases the GIL on big blocks), beside the
    inflating and writing of the same block: at most two blocks are in memory at a time.
    """

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.digest = hashlib.sha256()
        self.pos = 0  # file offset of the next byte handed out
        self._block = memoryview(b"")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
        self._hashing: Future[None] | None = None

    def _fill(self) -> bool:
        data = self.f.read(READ_BLOCK)
        if not data:
            return False
        if self._hashing is not None:
            self._hashing.result()  # the hash keeps up: never more than one block waits for it
        self._hashing = self._pool.submit(self.digest.update, data)
        self._block = memoryview(data)
        return True

    def pieces(self, size: int) -> Iterator[memoryview]:
        """The next ``size`` bytes, as views of the blocks they lie in; fewer when the file ends."""
        while size > 0:
            if not self._block and not self._fill():
                return
            piece = self._block[:size]
            self._block = self._block[len(piece):]
            self.pos += len(piece)
            size -= len(piece)
            yield piece

    def exactly(self, size: int) -> bytes:
        return b"".join(bytes(p) for p in self.pieces(size))

    def skip_to(self, offset: int) -> bool:
        """Hash the bytes up to ``offset`` (local headers, the central directory); False if already past it."""
        if offset < self.pos:
            return False
        for _ in self.pieces(offset - self.pos):
            pass
        return True

    def hexdigest(self) -> str:
        """Hash what is left of the file too, then return the whole file's SHA-256."""
        while self._block or self._fill():
            self.pos += len(self._block)
            self._block = memoryview(b"")
        if self._hashing is not None:
            self._hashing.result()
        return self.digest.hexdigest()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def unpack_hashed(
    path: Path, dest: Path, *, plan: ZipPlan, limits: Limits, step: str, keep: frozenset[str] = frozenset(),
) -> str:
    """Check, hash and unpack an inspected zip into the empty folder ``dest`` in one read of it.

    Every check of ``verify_zip`` and ``extract_zip`` (real sizes, CRCs, the unpacked-bytes
    budget, ``O_EXCL | O_NOFOLLOW`` files) holds; a refusal names ``step`` with the same words,
    and empties ``dest`` (but for ``keep``) before it is raised. Returns the SHA-256 of the whole
    file, hashed from the very bytes that were unpacked. An ``OSError`` while writing is raised
    as it is (the caller decides what a full disk means at its step), ``dest`` emptied too.
    """
    if any(child.name not in keep for child in dest.iterdir()):
        raise Refusal(step, "the destination folder is not empty")
    try:
        return _unpack_hashed(path, dest, plan=plan, limits=limits, step=step)
    except BaseException:
        _empty(dest, keep)
        raise


def _unpack_hashed(path: Path, dest: Path, *, plan: ZipPlan, limits: Limits, step: str) -> str:
    with _open_zip(path, step) as archive, path.open("rb", buffering=0) as raw:
        infos = archive.infolist()
        if _members_now(infos, limits) != plan.members:
            raise Refusal(step, "the package changed after it was checked")
        _make_dirs(dest, list(plan.members))
        entries = sorted(
            ((info, member) for info, member in zip(infos, plan.members, strict=True) if not member.is_dir),
            key=lambda pair: pair[0].header_offset,
        )
        reader = _OneRead(raw)
        # Creating a file waits on the file system far more than it computes: threads create
        # them ahead, in the zip's order, while this one inflates and writes.
        opener = ThreadPoolExecutor(max_workers=EXTRACT_THREADS, thread_name_prefix="create")
        opened: dict[int, Future[int]] = {}  # at most OPEN_AHEAD files open at a time

        def open_ahead(i: int) -> None:
            if i < len(entries):
                opened[i] = opener.submit(os.open, dest / entries[i][1].name, _FILE_FLAGS, 0o644)

        try:
            for i in range(OPEN_AHEAD):
                open_ahead(i)
            budget = limits.max_unpacked_bytes
            for i, (info, _) in enumerate(entries):
                if not reader.skip_to(info.header_offset):
                    raise Refusal(step, "the package changed after it was checked")
                future = opened.pop(i)  # from here its fd is _unpack_entry's to close
                open_ahead(i + OPEN_AHEAD)
                budget = _unpack_entry(reader, info, future.result(), budget, step)
            return reader.hexdigest()
        finally:
            reader.close()
            opener.shutdown(wait=True, cancel_futures=True)
            for future in opened.values():
                if not future.cancelled() and future.exception() is None:
                    os.close(future.result())


def _unpack_entry(reader: _OneRead, info: zipfile.ZipInfo, fd: int, budget: int, step: str) -> int:
    """Inflate one entry from the reader into the new file ``fd`` (closed here); what is left of the budget."""
    label = shown(info.orig_filename)
    try:
        return _unpack_into(reader, info, fd, budget, step, label)
    finally:
        os.close(fd)


def _unpack_into(reader: _OneRead, info: zipfile.ZipInfo, fd: int, budget: int, step: str, label: str) -> int:
    header = reader.exactly(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
        raise Refusal(step, f"entry '{label}' has no valid local header (the zip is damaged)")
    name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
    reader.skip_to(reader.pos + name_length + extra_length)
    decompressor = zlib.decompressobj(-zlib.MAX_WBITS) if info.compress_type == zipfile.ZIP_DEFLATED else None
    produced = 0
    crc = 0
    left = info.compress_size
    for block in reader.pieces(info.compress_size):
        left -= len(block)
        for chunk in _inflate(decompressor, block, label, step, BLOCK):  # type: ignore[arg-type]
            produced += len(chunk)
            if produced > info.file_size:
                raise Refusal(step, f"entry '{label}' unpacks to more than the {info.file_size} bytes it declares")
            budget -= len(chunk)
            if budget < 0:
                raise Refusal(step, "the package unpacks to more bytes than the configured limit")
            crc = zlib.crc32(chunk, crc)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
    if left:
        raise Refusal(step, f"entry '{label}' is corrupt (the zip is truncated)")
    if (decompressor is not None and not decompressor.eof) or produced != info.file_size:
        raise Refusal(step, f"entry '{label}' is corrupt (it ends early)")
    if crc != info.CRC:
        raise Refusal(step, f"entry '{label}' is corrupt (bad CRC)")
    return budget
