"""Benchmark packages: a "mixed" extension zip of a given size.

A few large incompressible jars (≈60 % of the zip) and thousands of small files (≈40 %): half of
them compressible text (JavaScript/XML-like, ≈3–4× with deflate), half incompressible (images).
That is the shape of real ThingWorx extensions: a handful of big jars in ``lib/`` and a widget
tree of many small files in ``ui/``.
"""
from __future__ import annotations

import os
import random
import zipfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

MB = 1024 * 1024


def metadata_xml(name: str, version: str, entities: int) -> str:
    things = "".join(f'    <Thing name="{name}Thing{i}" description=""/>\n' for i in range(entities))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Entities>\n  <ExtensionPackages>\n'
        f"    <ExtensionPackage name={quoteattr(name)} packageVersion={quoteattr(version)}"
        ' vendor="extadmin bench" description="benchmark package" minimumThingWorxVersion="9.0.0"'
        ' dependsOn="" haCompatible="true"/>\n'
        f"  </ExtensionPackages>\n  <Things>\n{things}  </Things>\n</Entities>\n"
    )


def _code_blob(rng: random.Random, size: int) -> bytes:
    lines = []
    total = 0
    while total < size:
        line = (
            f"function w_{rng.getrandbits(32):08x}(a, b) {{ return a * {rng.randrange(1000)} + "
            f"b.{rng.choice(['value', 'name', 'id', 'size'])}; }} // {rng.getrandbits(48):012x}\n"
        )
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()


def build_mixed(
    folder: Path, name: str, size: int, *, version: str = "1.0.0", small_files: int | None = None, seed: int = 7
) -> Path:
    """Write ``<folder>/<name>-<version>.zip`` of about ``size`` bytes (the zip file's size)."""
    rng = random.Random(seed)
    path = folder / f"{name}-{version}.zip"
    jars = 4
    jar_bytes = int(size * 0.6) // jars
    if small_files is None:
        small_files = max(200, min(6000, size // (50 * 1024)))
    small_budget = int(size * 0.4)
    # Half the small-file budget is incompressible, half is text that deflates ≈3.5×: so the text
    # files are given ≈3.5× their share of bytes to land on the zip size.
    per_file = max(512, small_budget // small_files)
    blob = _code_blob(rng, 4 * MB)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.xml", metadata_xml(name, version, entities=50), compresslevel=6)
        for i in range(jars):
            zf.writestr(f"lib/{name.lower()}-part{i}.jar", os.urandom(jar_bytes), compresslevel=1)
        for i in range(small_files):
            folder_name = f"ui/{name}/widget{i % 97:02d}"
            if i % 2:
                n = int(per_file * 3.5 * rng.uniform(0.5, 1.5))
                off = rng.randrange(0, len(blob) - n) if n < len(blob) else 0
                zf.writestr(f"{folder_name}/file{i:05d}.js", blob[off : off + n], compresslevel=6)
            else:
                n = int(per_file * rng.uniform(0.5, 1.5))
                zf.writestr(f"{folder_name}/image{i:05d}.png", os.urandom(n), compresslevel=6)
    return path


def build_small(folder: Path, name: str, *, version: str = "1.0.0") -> Path:
    """A tiny package (a few KB): what convergence of "a small package" means."""
    path = folder / f"{name}-{version}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.xml", metadata_xml(name, version, entities=3))
        zf.writestr(f"lib/{name.lower()}.jar", os.urandom(4096))
        zf.writestr(f"ui/{name}/{name.lower()}.js", f"/* {name} {version} */\n")
    return path


def unpacked_size(path: Path) -> tuple[int, int]:
    """(entries, total uncompressed bytes)."""
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        return len(infos), sum(i.file_size for i in infos)
