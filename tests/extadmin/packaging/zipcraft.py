"""Building ordinary and hostile zips byte by byte for the packaging tests."""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Iterable
from pathlib import Path

FIXTURES = Path("/work/shared/fixtures/metadata")
CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
LOCAL = struct.Struct("<4s2B4HL2L2H")
# Field positions in CENTRAL and LOCAL tuples, named for readability.
CENTRAL_FIELDS = {
    "flags": 5, "method": 6, "crc": 9, "compress_size": 10, "size": 11, "external_attr": 17, "offset": 18,
}  # fmt: skip
LOCAL_FIELDS = {"flags": 3, "method": 4, "crc": 7, "compress_size": 8, "size": 9}

Entry = tuple[str | zipfile.ZipInfo, bytes]


def info(
    name: str,
    *,
    mode: int | None = None,
    date_time: tuple[int, int, int, int, int, int] = (2014, 5, 1, 12, 0, 0),
    compress_type: int = zipfile.ZIP_DEFLATED,
) -> zipfile.ZipInfo:
    """A ZipInfo whose name is written exactly as given (zipfile would cut it at a NUL)."""
    zinfo = zipfile.ZipInfo("placeholder", date_time=date_time)
    zinfo.filename = name
    zinfo.compress_type = compress_type
    if mode is not None:
        zinfo.external_attr = mode << 16
    return zinfo


def make_zip(path: Path, entries: Iterable[Entry]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry, data in entries:
            archive.writestr(entry, data)
    return path


def fixture_metadata(name: str = "JavaWithDependencies") -> bytes:
    return (FIXTURES / f"{name}.xml").read_bytes()


def package_zip(path: Path, extra: Iterable[Entry] = (), *, metadata: bytes | None = None) -> Path:
    """A realistic package: metadata.xml, directory entries, jars, widget files, entities."""
    entries: list[Entry] = [
        ("metadata.xml", metadata if metadata is not None else fixture_metadata()),
        (info("lib/", mode=0o40755, date_time=(1980, 1, 1, 0, 0, 0)), b""),
        (info("lib/common/"), b""),
        (info("lib/common/mqttbridge.jar", mode=0o100644), bytes(range(256)) * 40),
        (info("ui/statuslamp/statuslamp.ide.js", date_time=(1980, 1, 1, 0, 0, 0)), b"// ide\n" * 500),
        (info("Entities/Things/Things_X.xml", compress_type=zipfile.ZIP_STORED), b"<Things/>"),
        ("Entities/DataShapes_Y.xml", b"<DataShapes/>"),
        *extra,
    ]
    return make_zip(path, entries)


def central_records(data: bytes) -> list[tuple[int, tuple[int | bytes, ...], bytes]]:
    """(position, fields, name) of every central directory record, in order."""
    (cd_offset,) = struct.unpack_from("<L", data, len(data) - 6)  # EOCD without a comment
    records = []
    position = cd_offset
    while data[position : position + 4] == b"PK\x01\x02":
        fields = CENTRAL.unpack_from(data, position)
        name_end = position + CENTRAL.size + fields[12]
        records.append((position, fields, data[position + CENTRAL.size : name_end]))
        position = name_end + fields[13] + fields[14]
    return records


def patch_central(path: Path, name: str, **changes: int) -> None:
    """Rewrite fields of the named entry's central directory record."""
    data = bytearray(path.read_bytes())
    for position, fields, raw_name in central_records(bytes(data)):
        if raw_name == name.encode():
            values = list(fields)
            for field, value in changes.items():
                values[CENTRAL_FIELDS[field]] = value
            CENTRAL.pack_into(data, position, *values)
            path.write_bytes(bytes(data))
            return
    raise AssertionError(f"no central record for {name!r}")


def central_field(path: Path, name: str, field: str) -> int:
    for _, fields, raw_name in central_records(path.read_bytes()):
        if raw_name == name.encode():
            value = fields[CENTRAL_FIELDS[field]]
            assert isinstance(value, int)
            return value
    raise AssertionError(f"no central record for {name!r}")


def patch_local(path: Path, name: str, **changes: int) -> None:
    data = bytearray(path.read_bytes())
    position = central_field(path, name, "offset")
    values = list(LOCAL.unpack_from(data, position))
    for field, value in changes.items():
        values[LOCAL_FIELDS[field]] = value
    LOCAL.pack_into(data, position, *values)
    path.write_bytes(bytes(data))


def data_offset(path: Path, name: str) -> int:
    data = path.read_bytes()
    position = central_field(path, name, "offset")
    fields = LOCAL.unpack_from(data, position)
    return position + LOCAL.size + fields[10] + fields[11]
