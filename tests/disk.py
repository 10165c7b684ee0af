"""What is on a node's disk, for tests: a fingerprint of a tree, and extadmin's leftovers."""
from __future__ import annotations

import os
import zlib
from pathlib import Path

from extadmin.storage import NodeStorage


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a fingerprint (file contents, folder, link): a disk snapshot."""
    if not root.exists():
        return {}
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = str(full.relative_to(root))
            if full.is_symlink():
                found[rel] = f"link:{os.readlink(full)}"
            elif full.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = f"file:{zlib.crc32(full.read_bytes()):08x}"
    return found


def leftovers(storage: NodeStorage) -> list[str]:
    """Anything in the work folder's staging/ and retired/: what a backout must never leave."""
    found = []
    for kind in ("staging", "retired"):
        folder = storage.work / kind
        if folder.is_dir():
            found += [f"{kind}/{p.name}" for p in folder.iterdir()]
    return found
