"""A node's storage on disk: ``<root>/extensions/<name>/`` plus extadmin's own work folder.

Layout::

    <root>/extensions/<name>/            the unzipped package, exactly the zip's files
    <root>/extensions/<name>/<name>.chk  the zip's SHA-256 (hex)
    <root>/.extadmin/staging/            new versions are built here, then renamed into place
    <root>/.extadmin/retired/            the previous version waits here until the new one is committed
    <root>/.extadmin/staged/             a version built ahead of a rollout's activation (together mode)
    <root>/.extadmin/locks               one writer per package folder per node (a byte-range lock per name)
    <root>/.extadmin/holder.<name>       who holds ``name``'s lock (pid, since when), while it is held

An import unpacks the zip while it validates it, into a private folder beside the root,
``<root's parent>/.<root's name>.unpack-<pid>-<random>/``, so that a refused package leaves the
storage as it was; once every check passed it is renamed into ``staging/``.

Staging and retired live on the same filesystem as ``extensions/`` so that the swap is two
renames: a reader sees the old version or the new one complete, never a mix.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extadmin.packaging import Conflict, is_safe_name
from extadmin.processes import process_alive

WORK = ".extadmin"
LOCK_POLL_SECONDS = 0.1


class LockBusy(Conflict):
    """Another process holds the package folder's lock on this node."""

    def __init__(self, name: str, *, pid: int | None, held_for: float | None) -> None:
        self.name, self.pid, self.held_for = name, pid, held_for
        who = f" (pid {pid}, for {held_for:.0f} s)" if pid is not None and held_for is not None else ""
        super().__init__("lock", f"another import or sync of {name} is running on this node{who}")

    def held(self, waited: float) -> str:
        """"… has held this node's folder for 31 s (pid 4242)": how long it has been held, as far as is known."""
        said = f"another import or sync of {self.name} has held this node's folder for "
        if self.pid is None or self.held_for is None:
            return said + f"more than the {waited:g} s waited"
        return said + f"{max(self.held_for, waited):.0f} s (pid {self.pid})"


@dataclass
class Swap:
    """A new package folder renamed into place, with the old one kept aside until commit."""

    target: Path
    retired: Path | None

    def commit(self) -> None:
        if self.retired is not None:
            _delete(self.retired)
            self.retired = None

    def rollback(self) -> None:
        shutil.rmtree(self.target, ignore_errors=True)
        if self.retired is not None:
            os.replace(self.retired, self.target)
            self.retired = None


class NodeStorage:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.extensions = self.root / "extensions"
        self.work = self.root / WORK

    # --- paths ----------------------------------------------------------------------------
    def package_dir(self, name: str) -> Path:
        return self.extensions / name

    def chk_path(self, name: str) -> Path:
        return self.extensions / name / f"{name}.chk"

    def _workdir(self, kind: str) -> Path:
        path = self.work / kind
        path.mkdir(parents=True, exist_ok=True)
        return path

    # --- locking --------------------------------------------------------------------------
    @contextmanager
    def lock(self, name: str, *, wait: bool | float) -> Iterator[None]:
        """Hold ``name``'s folder lock on this node; the kernel releases it if the process dies.

        ``wait``: ``False`` refuses at once, ``True`` waits for ever, a number waits at most that
        many seconds; then ``LockBusy`` says which process holds it and since when. One lock file
        per node, one byte of it per package name (an open-file-description lock, so two threads
        of one process exclude each other too); the kernel does not say who holds such a lock, so
        the holder writes that in ``holder.<name>`` beside it while it holds it.
        """
        self.work.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.work / "locks", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            offset = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=7).digest(), "big")
            self._acquire(fd, offset, name, wait)
            holder = self.work / f"holder.{name}"
            _write_holder(holder)
            try:
                yield
            finally:
                with contextlib.suppress(FileNotFoundError):
                    holder.unlink()  # still ours: nobody else can hold the lock until we close
        finally:
            os.close(fd)  # closing the description releases its locks

    def _acquire(self, fd: int, offset: int, name: str, wait: bool | float) -> None:
        if wait is True:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, _flock(fcntl.F_WRLCK, offset))
            return
        deadline = time.monotonic() + (0 if wait is False else float(wait))
        while True:
            try:
                fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(fcntl.F_WRLCK, offset))
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise LockBusy(name, **_read_holder(self.work / f"holder.{name}"))
            time.sleep(LOCK_POLL_SECONDS)

    # --- building and swapping ----------------------------------------------------------
    def new_staging(self, name: str) -> Path:
        path = self._workdir("staging") / f"{name}-{uuid.uuid4().hex}"
        path.mkdir()
        return path

    def new_private_unpack(self) -> Path | None:
        """A new empty folder beside the root, on its file system, that no cleanup of this storage
        touches (so nothing of the storage changes while a package is only being validated); None
        when the root's parent cannot hold it (then nothing is unpacked ahead).

        Those of processes that died (kill -9 while validating) are removed first.
        """
        parent = self.root.parent
        prefix = f".{self.root.name}.unpack-"
        with contextlib.suppress(OSError):
            for entry in parent.glob(f"{prefix}*"):
                pid = entry.name[len(prefix):].partition("-")[0]
                if pid.isdigit() and not process_alive(int(pid)):
                    _delete(entry)
        path = parent / f"{prefix}{os.getpid()}-{uuid.uuid4().hex}"
        try:
            path.mkdir()  # as new_staging does: the mode the installed folder will have (umask's)
        except OSError:
            return None
        return path

    def adopt_staging(self, folder: Path, name: str) -> Path | None:
        """Move ``folder`` (``new_private_unpack``'s) into staging/ as ``name``'s; the caller holds
        ``name``'s lock. None (and the folder removed) when it cannot be renamed there, e.g. the
        root is another file system: then the caller unpacks into staging/ itself."""
        path = self._workdir("staging") / f"{name}-{uuid.uuid4().hex}"
        try:
            os.replace(folder, path)
        except OSError:
            self.discard(folder)
            return None
        return path

    def swap_in(self, staging: Path, name: str) -> Swap:
        """Rename ``staging`` into place as ``extensions/<name>``; the old folder waits in retired/."""
        self.extensions.mkdir(parents=True, exist_ok=True)
        target = self.package_dir(name)
        retired: Path | None = None
        if target.exists() or target.is_symlink():
            retired = self._workdir("retired") / f"{name}-{uuid.uuid4().hex}"
            os.replace(target, retired)
        try:
            os.replace(staging, target)
        except BaseException:
            if retired is not None:
                os.replace(retired, target)
            raise
        _fsync_dir(self.extensions)
        return Swap(target=target, retired=retired)

    def remove(self, name: str) -> None:
        """Delete ``extensions/<name>`` by renaming it away first, so no half-deleted folder is seen."""
        target = self.package_dir(name)
        if not (target.exists() or target.is_symlink()):
            return
        doomed = self._workdir("retired") / f"{name}-{uuid.uuid4().hex}"
        os.replace(target, doomed)
        _delete(doomed)

    def discard(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def clean_leftovers_of(self, name: str) -> list[str]:
        """Remove ``name``'s staging and retired folders left by a process that died.

        The caller holds ``name``'s lock, so nothing alive is using them.
        """
        removed: list[str] = []
        for kind in ("staging", "retired"):
            folder = self.work / kind
            if folder.is_dir():
                for entry in folder.glob(f"{name}-*"):
                    if entry.name.rsplit("-", 1)[0] == name:
                        _delete(entry)
                        removed.append(f"{kind}/{entry.name}")
        return removed

    def clean_leftovers(self) -> list[str]:
        """Remove staging and retired folders left by a process that died; returns what it removed.

        Only call while holding no package lock from this process: a leftover whose package lock
        is held elsewhere belongs to a live import or sync and is kept.
        """
        removed: list[str] = []
        for kind in ("staging", "retired"):
            folder = self.work / kind
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                name = entry.name.rsplit("-", 1)[0]
                try:
                    with self.lock(name, wait=False):
                        _delete(entry)
                        removed.append(f"{kind}/{entry.name}")
                except LockBusy:
                    continue
        return removed

    # --- staged versions (rollouts activating together) -----------------------------------
    def staged_path(self, name: str, sha256: str) -> Path:
        """Where a version built ahead of its activation waits: ``.extadmin/staged/<name>-<sha256>``.

        Kept across passes (unlike staging/), until it is swapped in or no longer wanted.
        """
        return self.work / "staged" / f"{name}-{sha256}"

    def keep_staged(self, staging: Path, name: str, sha256: str) -> Path:
        target = self.staged_path(name, sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            _delete(target)
        os.replace(staging, target)
        _fsync_dir(target.parent)
        return target

    def take_staged(self, name: str, sha256: str) -> Path | None:
        """The staged version of ``name``, moved into staging/ for the swap; None when there is none."""
        staged = self.staged_path(name, sha256)
        if not staged.is_dir():
            return None
        path = self._workdir("staging") / f"{name}-{uuid.uuid4().hex}"
        os.replace(staged, path)
        return path

    def clean_staged(self, keep: set[str]) -> list[str]:
        """Staged versions no longer wanted (``keep``: the folder names still to activate)."""
        removed: list[str] = []
        folder = self.work / "staged"
        if not folder.is_dir():
            return removed
        for entry in folder.iterdir():
            if entry.name in keep:
                continue
            try:
                with self.lock(entry.name.rsplit("-", 1)[0], wait=False):
                    _delete(entry)
                    removed.append(f"staged/{entry.name}")
            except LockBusy:
                continue
        return removed

    # --- reading what is installed ------------------------------------------------------
    def installed_names(self) -> list[str]:
        if not self.extensions.is_dir():
            return []
        return sorted(p.name for p in self.extensions.iterdir() if is_safe_name(p.name))

    def read_chk(self, name: str) -> str | None:
        try:
            with open(self.chk_path(name), "rb") as f:  # bytes: no text layer for 65 characters
                return f.read(4096).decode("ascii", "replace").strip() or None
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def verify(self, name: str, manifest: list[list], *, contents: bool) -> str | None:
        """Compare the folder with the archive's manifest; returns what differs, or None if it matches.

        ``manifest`` holds ``[path, size, crc32]`` for every file of the zip. With ``contents`` the
        files are read and their CRC-32 compared too (startup); without, names and sizes only.
        """
        folder = self.package_dir(name)
        if folder.is_symlink() or not folder.is_dir():
            return "the folder is missing"
        expected = {path: (size, crc) for path, size, crc in manifest}
        actual: dict[str, int] = {}
        try:
            link = _sizes_under(str(folder), "", actual)
        except OSError as exc:  # an unreadable subfolder: the copy cannot be proved, so it is repaired
            return f"a folder could not be read ({exc.strerror}: {exc.filename})"
        if link is not None:
            return f"unexpected link {link}"
        actual.pop(f"{name}.chk", None)
        missing = sorted(set(expected) - set(actual))
        if missing:
            return f"file {missing[0]} is missing" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        extra = sorted(set(actual) - set(expected))
        if extra:
            return f"unexpected file {extra[0]}" + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
        for rel, (size, crc) in expected.items():
            if actual[rel] != size:
                return f"file {rel} has {actual[rel]} bytes, expected {size}"
            if contents and _crc32(folder / rel) != crc:
                return f"file {rel} was altered (its content does not match the archive)"
        return None


def _sizes_under(folder: str, prefix: str, sizes: dict[str, int]) -> str | None:
    """Every file's size under ``folder`` into ``sizes`` (by "/"-joined path); the first link found, if any.

    ``os.scandir`` knows each entry's type from the directory listing itself, so the only system
    call per file is its ``lstat``: a periodic pass over 100,000 files stays cheap.
    """
    with os.scandir(folder) as entries:
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_symlink():
                return rel
            if entry.is_dir(follow_symlinks=False):
                link = _sizes_under(entry.path, rel + "/", sizes)
                if link is not None:
                    return link
            else:
                sizes[rel] = entry.stat(follow_symlinks=False).st_size
    return None


def _flock(kind: int, offset: int) -> bytes:
    # struct flock on Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid.
    return struct.pack("@hhqqi4x", kind, os.SEEK_SET, offset, 1, 0)


def _write_holder(path: Path) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(f"{os.getpid()} {time.time():.3f}\n")
    os.replace(tmp, path)


def _read_holder(path: Path) -> dict[str, Any]:
    """``pid`` and ``held_for`` of the lock's holder, or None each when it did not say (or just left)."""
    try:
        pid, since = path.read_text().split()
        return {"pid": int(pid), "held_for": max(time.time() - float(since), 0.0)}
    except (OSError, ValueError):
        return {"pid": None, "held_for": None}


def write_chk(folder: Path, name: str, sha256: str) -> None:
    path = folder / f"{name}.chk"
    with open(path, "x", encoding="ascii") as f:
        f.write(sha256 + "\n")
        f.flush()
        os.fsync(f.fileno())


def _delete(path: Path) -> None:
    """Delete a folder tree, or the file or link found where a folder was expected.

    ``rmtree`` refuses a link or a file (and ``ignore_errors`` would hide that), which left them
    in retired/ for good. A link is removed itself, never followed.
    """
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(1024 * 1024):
            crc = zlib.crc32(block, crc)
    return crc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
