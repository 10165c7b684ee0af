"""Every node has its own storage: the claim that a storage folder, and the extensions folder it
really writes into, belong to one node.

Below both the import (``extadmin.importing``) and the agent (``nodes.agent``), which claim a
storage before they write into it; so it imports nothing of either.

The claim follows a link: a storage whose ``extensions/`` is a symbolic link to another storage's
``extensions/`` writes into that other storage, so that other storage is claimed too. Two nodes
can then never write into one extensions folder, whichever way they reach it.
"""
from __future__ import annotations

import fcntl
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from extadmin.packaging import Refusal
from extadmin.packaging.names import node_name_check
from extadmin.storage import WORK, NodeStorage

NODE_MARKER = "node"
AGENT_LOCK = "agent.lock"


@dataclass
class StorageClaim:
    """This process's exclusive hold on a storage folder; released by ``release`` or by dying."""

    fds: list[int] = field(default_factory=list)

    def release(self) -> None:
        while self.fds:
            os.close(self.fds.pop())


@dataclass(frozen=True)
class _Claimed:
    """One storage root the claim covers, and how a refusal names it."""

    root: Path
    said: str  # "storage /a" or "storage /b: its extensions folder is a link to /a/extensions, which"

    @property
    def work(self) -> Path:
        return self.root / WORK


def storage_claim(*, storage: NodeStorage, node_name: str, exclusive: bool) -> StorageClaim:
    """Make sure ``storage`` is ``node_name``'s and nobody else's; raises ``Refusal`` saying who holds it.

    ``exclusive`` (the agent): also hold the storage's lock while running. ``sync_node`` and an
    import only check the owner, since they run beside the node's own agent.
    """
    node_name_check(name=node_name)  # before anything is written under the storage
    claimed = _claimed_roots(storage)
    claim = StorageClaim()
    try:
        for c in claimed:
            c.work.mkdir(parents=True, exist_ok=True)
            if exclusive:
                claim.fds.append(_lock_storage(c))
        for c in claimed:  # every owner checked before anything is written
            _refuse_other_owner(c, node_name)
        for c in claimed:
            if _marker_owner(c.work) != node_name:
                _write_atomically(c.work / NODE_MARKER, node_name + "\n")
        for fd in claim.fds:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{node_name} {os.getpid()}\n".encode(), 0)
    except BaseException:
        claim.release()
        raise
    return claim


def _claimed_roots(storage: NodeStorage) -> list[_Claimed]:
    """The storage itself and, when its ``extensions/`` leads elsewhere, the storage it leads into."""
    own = _Claimed(root=storage.root, said=f"storage {storage.root}")
    real = Path(os.path.realpath(storage.extensions))
    if real.parent == storage.root:
        return [own]
    said = f"storage {storage.root}: its extensions folder is a link to {real}, which"
    return [own, _Claimed(root=real.parent, said=said)]


def _refuse_other_owner(c: _Claimed, node_name: str) -> None:
    owner = _marker_owner(c.work)
    if not owner or owner == node_name:
        return
    raise Refusal(
        "start",
        f"{c.said} belongs to node {owner}; every node needs its own storage folder "
        f"(delete {c.work / NODE_MARKER} only if node {owner} no longer uses it)",
    )


def _lock_storage(c: _Claimed) -> int:
    fd = os.open(c.work / AGENT_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 256, 0).decode(errors="replace").split()
        os.close(fd)
        who = f"node {holder[0]} (pid {holder[1]})" if len(holder) >= 2 else "another agent"
        raise Refusal("start", f"{c.said} is already in use by the running agent of {who}") from None
    return fd


def _marker_owner(work: Path) -> str:
    try:
        return (work / NODE_MARKER).read_text().strip()
    except FileNotFoundError:
        return ""


def _write_atomically(path: Path, text: str) -> None:
    # Unique per writer: the threads of one web worker may claim a fresh storage at the same moment.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
