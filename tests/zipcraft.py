"""Crafting zips byte by byte for hostile-input tests."""
from __future__ import annotations

import struct
import warnings
import zipfile
from pathlib import Path

Entry = tuple[str | zipfile.ZipInfo, bytes]
_CENTRAL = b"PK\x01\x02"


def raw_entry(name: str, *, mode: int | None = None, method: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    """A ZipInfo that keeps ``name`` exactly (ZipInfo() itself would cut it at a NUL)."""
    info = zipfile.ZipInfo("placeholder", date_time=(2020, 1, 1, 0, 0, 0))
    info.filename = info.orig_filename = name
    info.compress_type = method
    if mode is not None:
        info.external_attr = mode << 16
    return info


def write_zip(path: Path, entries: list[Entry]) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are the point of some cases
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for entry, data in entries:
                zf.writestr(entry, data)
    return path


def central_records(data: bytes) -> list[int]:
    """Offsets of every central directory record."""
    (cd_offset,) = struct.unpack_from("<L", data, len(data) - 6)
    offsets, pos = [], cd_offset
    while data[pos : pos + 4] == _CENTRAL:
        offsets.append(pos)
        n, m, k = struct.unpack_from("<HHH", data, pos + 28)
        pos += 46 + n + m + k
    return offsets


def patch_entry(path: Path, entry: str, **fields: int) -> Path:
    """Rewrite header fields of ``entry`` (central and local): flags, crc, size, offset (central only)."""
    data = bytearray(path.read_bytes())
    central = {"flags": (8, "<H"), "crc": (16, "<L"), "size": (24, "<L"), "offset": (42, "<L")}
    local = {"flags": (6, "<H"), "crc": (14, "<L"), "size": (22, "<L")}
    for pos in central_records(bytes(data)):
        n = struct.unpack_from("<H", data, pos + 28)[0]
        if bytes(data[pos + 46 : pos + 46 + n]).decode("utf-8", "replace") != entry:
            continue
        (local_at,) = struct.unpack_from("<L", data, pos + 42)
        for key, value in fields.items():
            where, fmt = central[key]
            struct.pack_into(fmt, data, pos + where, value)
            if key in local:
                where, fmt = local[key]
                struct.pack_into(fmt, data, local_at + where, value)
    path.write_bytes(bytes(data))
    return path
