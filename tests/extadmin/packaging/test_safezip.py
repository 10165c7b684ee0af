from __future__ import annotations

import io
import os
import posixpath
import random
import re
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zipcraft import (
    central_field,
    data_offset,
    info,
    make_zip,
    package_zip,
    patch_central,
    patch_local,
)

from extadmin.packaging import (
    Limits,
    Refusal,
    ZipPlan,
    extract_member_to,
    extract_zip,
    inspect_zip,
    read_member,
)
from extadmin.packaging.errors import shown

pytestmark = pytest.mark.dbless  # no database, no broker: .ci/run runs it once

LIMITS = Limits()
MiB = 1024 * 1024


def refusal(path: Path, limits: Limits = LIMITS) -> Refusal:
    with pytest.raises(Refusal) as caught:
        inspect_zip(path, limits=limits)
    assert caught.value.step == "validate"
    return caught.value


def files_under(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink()
    }


# --- shapes real packages have ----------------------------------------------------------------


def test_it_accepts_a_realistic_package(tmp_path: Path) -> None:
    plan = inspect_zip(package_zip(tmp_path / "p.zip"), limits=LIMITS)

    assert plan.names() == {
        "metadata.xml",
        "lib/common/mqttbridge.jar",
        "ui/statuslamp/statuslamp.ide.js",
        "Entities/Things/Things_X.xml",
        "Entities/DataShapes_Y.xml",
    }
    assert {m.name for m in plan.members if m.is_dir} == {"lib", "lib/common"}
    assert plan.total_size == sum(m.size for m in plan.members)
    assert not plan.is_bundle()


def test_it_accepts_names_with_dots_that_do_not_escape(tmp_path: Path) -> None:
    names = ["a..b/..x.txt", ".hidden", "x/..y", "ui/w/app.min.js"]
    plan = inspect_zip(make_zip(tmp_path / "p.zip", [(n, b"x") for n in names]), limits=LIMITS)
    assert plan.names() == set(names)


@pytest.mark.parametrize("name", ["x/...", "lib/a.", "lib/a ", "lib. /a.txt"])
def test_it_refuses_names_a_windows_node_would_write_under_another_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(Refusal, match="ends with a dot or a space"):
        inspect_zip(make_zip(tmp_path / "p.zip", [(name, b"x")]), limits=LIMITS)


def test_it_describes_files_under_their_cleaned_names_in_the_manifest(tmp_path: Path) -> None:
    plan = inspect_zip(make_zip(tmp_path / "p.zip", [("./lib//x.jar", b"xy"), ("./ui/", b"")]), limits=LIMITS)
    assert plan.manifest() == [["lib/x.jar", 2, zlib.crc32(b"xy")]]


def test_it_normalises_redundant_separators(tmp_path: Path) -> None:
    plan = inspect_zip(make_zip(tmp_path / "p.zip", [("./lib//x.jar", b"x")]), limits=LIMITS)
    assert plan.names() == {"lib/x.jar"}


def test_it_treats_names_case_sensitively(tmp_path: Path) -> None:
    plan = inspect_zip(make_zip(tmp_path / "p.zip", [("A.txt", b"1"), ("a.txt", b"2")]), limits=LIMITS)
    assert plan.names() == {"A.txt", "a.txt"}


def test_it_lets_small_highly_compressible_files_pass(tmp_path: Path) -> None:
    plan = inspect_zip(make_zip(tmp_path / "p.zip", [("big.xml", b" " * MiB)]), limits=LIMITS)
    assert plan.total_size == MiB


def test_it_recognises_a_bundle(tmp_path: Path) -> None:
    inner = package_zip(tmp_path / "inner.zip").read_bytes()
    bundle = make_zip(tmp_path / "b.zip", [("pkgs/", b""), ("A.zip", inner), ("pkgs/B.ZIP", inner)])
    assert inspect_zip(bundle, limits=LIMITS).is_bundle()


def test_it_pairs_each_member_of_a_bundle_with_the_signature_beside_it(tmp_path: Path) -> None:
    inner = package_zip(tmp_path / "inner.zip").read_bytes()
    entries = [
        ("A.zip", inner), ("A.zip.sig", b"sig"), ("pkgs/B.ZIP", inner), ("pkgs/B.ZIP.SIG", b"sig"), ("C.zip", inner),
    ]
    plan = inspect_zip(make_zip(tmp_path / "b.zip", entries), limits=LIMITS)
    assert plan.is_bundle()
    assert plan.bundle_signatures() == {"A.zip": "A.zip.sig", "pkgs/B.ZIP": "pkgs/B.ZIP.SIG"}


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ([("A.zip", b"x"), ("B.zip.sig", b"s")], "entry 'B.zip.sig' is a signature with no 'B.zip' beside it"),
        ([("A.zip", b"x"), ("notes.sig", b"s")], "entry 'notes.sig' is a signature with no 'notes' beside it"),
        ([("A.zip", b"x"), ("A.zip.sig", b"s"), ("A.zip.SIG", b"s")], "entry 'A.zip.SIG' is a second signature of"),
    ],
)
def test_it_refuses_a_signature_in_a_bundle_that_signs_no_member_or_a_signed_one(
    tmp_path: Path, entries: list[tuple[str, bytes]], reason: str
) -> None:
    plan = inspect_zip(make_zip(tmp_path / "b.zip", entries), limits=LIMITS)
    with pytest.raises(Refusal, match=re.escape(reason)):
        plan.bundle_signatures()


@pytest.mark.parametrize(
    "entries",
    [
        [("metadata.xml", b"<Entities/>"), ("A.zip", b"x")],
        [("A.zip", b"x"), ("readme.txt", b"x")],
        [("only/", b"")],
    ],
)
def test_it_does_not_mistake_other_zips_for_bundles(tmp_path: Path, entries: list[tuple[str, bytes]]) -> None:
    assert not inspect_zip(make_zip(tmp_path / "p.zip", entries), limits=LIMITS).is_bundle()


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../evil.txt", "escapes the package folder"),
        ("a/../../x", "escapes the package folder"),
        ("lib/../x", "escapes the package folder"),
        ("..", "escapes the package folder"),
        ("/abs", "absolute path"),
        ("/etc/passwd", "absolute path"),
        ("C:/x", "absolute path"),
        ("./C:", "absolute path"),  # found by hypothesis: the drive appears once "." is dropped
        (".//C:x/y", "absolute path"),
        ("C:\\x", "backslash"),
        ("..\\x", "backslash"),
        ("lib\\x.jar", "backslash"),
        ("lib/\x00evil.jar", "control character"),
        ("a\nb.txt", "control character"),
        ("a\x1b[2Jb.txt", "control character"),
        ("a\x7f.txt", "control character"),
        ("./", "empty name"),
    ],
)
def test_it_refuses_dangerous_names_naming_the_entry(tmp_path: Path, name: str, why: str) -> None:
    path = make_zip(tmp_path / "p.zip", [("metadata.xml", b"x"), (info(name), b"x")])
    reason = refusal(path).reason
    assert why in reason
    assert f"entry '{shown(name)}'" in reason


def test_it_never_prints_raw_control_characters(tmp_path: Path) -> None:
    reason = refusal(make_zip(tmp_path / "p.zip", [(info("a\x00\x1b.txt"), b"x")])).reason
    assert "a\\x00\\x1b.txt" in reason
    assert all(ch.isprintable() for ch in reason)


def test_it_refuses_a_path_longer_than_the_limit(tmp_path: Path) -> None:
    name = "d/" * 520 + "x"  # 1041 bytes, every component short
    reason = refusal(make_zip(tmp_path / "p.zip", [(name, b"x")])).reason
    assert "longer than 1024 bytes" in reason
    assert reason.startswith("entry 'd/d/")


def test_it_refuses_a_path_component_longer_than_255_bytes(tmp_path: Path) -> None:
    name = "lib/" + "é" * 128 + ".jar"  # 260 bytes in UTF-8, far below the whole-path limit
    reason = refusal(make_zip(tmp_path / "p.zip", [(name, b"x")])).reason
    assert "component longer than 255 bytes" in reason


def test_it_accepts_names_at_the_length_limits(tmp_path: Path) -> None:
    name = "/".join(["a" * 255] * 4)  # 1023 bytes
    plan = inspect_zip(make_zip(tmp_path / "p.zip", [(name, b"x")]), limits=LIMITS)
    assert plan.names() == {name}


# --- entry types ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        (0o120777, "symbolic link"),
        (0o010644, "FIFO"),
        (0o020644, "character device"),
        (0o060644, "block device"),
        (0o140755, "socket"),
        (0o170644, "special file"),  # no such type: as with hardlink markers, only files and dirs pass
    ],
)
def test_it_refuses_links_devices_and_fifos(tmp_path: Path, mode: int, kind: str) -> None:
    path = make_zip(tmp_path / "p.zip", [("metadata.xml", b"x"), (info("lib/link", mode=mode), b"/etc/passwd")])
    assert refusal(path).reason == f"entry 'lib/link' is a {kind}; only files and folders are allowed"


def test_it_refuses_a_directory_mode_on_a_file_name(tmp_path: Path) -> None:
    reason = refusal(make_zip(tmp_path / "p.zip", [(info("lib", mode=0o40755), b"")])).reason
    assert reason == "entry 'lib' is marked as a directory but its name has no trailing '/'"


def test_it_refuses_a_directory_that_carries_data(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [("lib/", b"")])
    patch_central(path, "lib/", size=5)
    assert refusal(path).reason.startswith("entry 'lib/' ")


# --- duplicates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "named"),
    [
        ("a.txt", "a.txt", "a.txt"),
        ("lib/x.jar", "lib//x.jar", "lib/x.jar"),
        ("lib/x.jar", "./lib/x.jar", "lib/x.jar"),
        ("lib/", "lib/", "lib"),
        ("lib", "lib/", "lib"),
        ("lib/", "lib", "lib"),
    ],
)
def test_it_refuses_duplicate_entries(tmp_path: Path, first: str, second: str, named: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names; that is the point
        path = make_zip(tmp_path / "p.zip", [(first, b"1"[: not first.endswith("/")]), (second, b"")])
    assert refusal(path).reason == f"entry '{named}' appears more than once"


@pytest.mark.parametrize("order", [("lib", "lib/x.jar"), ("lib/x.jar", "lib")])
def test_it_refuses_a_file_used_as_a_folder(tmp_path: Path, order: tuple[str, str]) -> None:
    path = make_zip(tmp_path / "p.zip", [(name, b"x") for name in order])
    assert refusal(path).reason == "entry 'lib/x.jar' is inside 'lib', which is a file"


def test_it_refuses_a_file_used_as_a_deeper_folder(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [("ui", b"x"), ("ui/w/a.js", b"x")])
    assert "inside 'ui'" in refusal(path).reason


# --- encryption and compression ---------------------------------------------------------------------


@pytest.mark.parametrize("flag", [0x01, 0x41])
def test_it_refuses_encrypted_entries(tmp_path: Path, flag: int) -> None:
    path = make_zip(tmp_path / "p.zip", [("metadata.xml", b"x"), ("lib/secret.jar", b"x" * 100)])
    patch_central(path, "lib/secret.jar", flags=flag)
    assert refusal(path).reason == "entry 'lib/secret.jar' is encrypted"


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_it_refuses_unsupported_compression(tmp_path: Path, method: int) -> None:
    path = make_zip(tmp_path / "p.zip", [(info("lib/x.jar", compress_type=method), b"x" * 100)])
    reason = refusal(path).reason
    assert reason.startswith(f"entry 'lib/x.jar' uses compression method {method}")


def test_it_refuses_aes_compression_method_99(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [("lib/x.jar", b"x" * 100)])
    patch_central(path, "lib/x.jar", method=99)
    assert "compression method 99" in refusal(path).reason


# --- zip bombs -----------------------------------------------------------------------------------------


def test_it_refuses_more_entries_than_the_limit(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [(f"f{i}", b"") for i in range(11)])
    reason = refusal(path, Limits(max_entries=10)).reason
    assert reason == "the package has 11 entries, more than the limit of 10"


def test_it_refuses_a_declared_total_over_the_limit(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [("a", os.urandom(600)), ("b", os.urandom(600))])
    reason = refusal(path, Limits(max_unpacked_bytes=1000)).reason
    assert reason == "the package would unpack to 1200 bytes, more than the limit of 1000"


def test_it_refuses_a_huge_compression_ratio(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [("metadata.xml", b"x"), ("lib/bomb.bin", bytes(4 * MiB))])
    reason = refusal(path).reason
    assert reason.startswith("entry 'lib/bomb.bin' expands 4194304 bytes from ")
    assert "zip bomb" in reason


def test_it_refuses_a_declared_size_that_lies_large(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [("lib/x.jar", os.urandom(1000))])
    patch_central(path, "lib/x.jar", size=0xFFFF_FFF0)
    assert refusal(path).reason.startswith("entry 'lib/x.jar' expands")


def test_it_refuses_a_stored_entry_whose_sizes_disagree(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [(info("a.txt", compress_type=zipfile.ZIP_STORED), b"x" * 100)])
    patch_central(path, "a.txt", size=50)
    assert refusal(path).reason.startswith("entry 'a.txt' is stored uncompressed but declares")


def test_it_refuses_entries_sharing_one_local_header(tmp_path: Path) -> None:
    # The non-recursive zip bomb: many central records pointing at the same compressed bytes.
    path = make_zip(tmp_path / "p.zip", [("a.txt", b"x" * 1000), ("b.txt", b"y" * 1000)])
    patch_central(path, "b.txt", offset=central_field(path, "a.txt", "offset"))
    reason = refusal(path).reason
    assert "overlaps entry" in reason
    assert "'a.txt'" in reason and "'b.txt'" in reason


def test_it_refuses_an_entry_running_into_the_next(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [("a.txt", os.urandom(1000)), ("b.txt", os.urandom(1000))])
    patch_central(path, "a.txt", compress_size=central_field(path, "a.txt", "compress_size") + 40)
    assert refusal(path).reason.startswith("entry 'b.txt' overlaps entry 'a.txt'")


def test_it_refuses_an_entry_overlapping_the_central_directory(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [("a.txt", os.urandom(1000))])
    patch_central(path, "a.txt", compress_size=5000)
    assert refusal(path).reason.startswith("entry 'a.txt' overlaps the central directory")


def test_it_refuses_a_local_header_with_another_name(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [("a.txt", b"x")])
    data = path.read_bytes()
    path.write_bytes(data.replace(b"a.txt", b"b.txt", 1))  # the first occurrence is the local header
    assert refusal(path).reason == "entry 'a.txt' has a different name in its local header"


def test_it_refuses_a_missing_local_header(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [("a.txt", b"x")])
    data = bytearray(path.read_bytes())
    data[0:4] = b"XXXX"
    path.write_bytes(bytes(data))
    assert refusal(path).reason.startswith("entry 'a.txt' has no valid local header")


# --- not a zip at all ----------------------------------------------------------------------------------


def test_it_refuses_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "p.zip"
    path.write_bytes(b"")
    assert refusal(path).reason == "the package is an empty file"


def test_it_refuses_an_empty_zip(tmp_path: Path) -> None:
    assert refusal(make_zip(tmp_path / "p.zip", [])).reason == "the package is an empty zip"


@pytest.mark.parametrize(
    "content",
    [b"just some text\n", b"<Entities/>", b"PK\x03\x04" + b"\x00" * 40, b"%PDF-1.4 " * 100],
)
def test_it_refuses_something_that_is_not_a_zip(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "p.zip"
    path.write_bytes(content)
    assert refusal(path).reason == "the package is not a zip archive, or it is truncated"


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_it_refuses_a_truncated_zip(tmp_path: Path, keep: float) -> None:
    path = package_zip(tmp_path / "p.zip")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    assert refusal(path).reason == "the package is not a zip archive, or it is truncated"


def test_it_refuses_a_missing_file(tmp_path: Path) -> None:
    assert refusal(tmp_path / "nope.zip").reason.startswith("the package cannot be read")


# --- reading one member ---------------------------------------------------------------------------------


def test_it_reads_a_member(tmp_path: Path) -> None:
    path = package_zip(tmp_path / "p.zip", metadata=b"<Entities/>")
    assert read_member(path, "metadata.xml", max_bytes=100) == b"<Entities/>"
    assert read_member(path, "ui/statuslamp/statuslamp.ide.js", max_bytes=MiB) == b"// ide\n" * 500


def test_it_refuses_to_read_a_member_over_the_limit(tmp_path: Path) -> None:
    path = package_zip(tmp_path / "p.zip", metadata=b"<Entities/>")
    with pytest.raises(Refusal) as caught:
        read_member(path, "metadata.xml", max_bytes=5)
    assert caught.value.as_dict() == {
        "step": "validate",
        "reason": "entry 'metadata.xml' is larger than the limit of 5 bytes",
    }


@pytest.mark.parametrize("name", ["nope.xml", "lib/common", "lib"])
def test_it_refuses_to_read_a_member_that_is_not_a_file_there(tmp_path: Path, name: str) -> None:
    with pytest.raises(Refusal, match="is missing from the package"):
        read_member(package_zip(tmp_path / "p.zip"), name, max_bytes=MiB)


def test_it_checks_the_crc_when_reading(tmp_path: Path) -> None:
    path = package_zip(tmp_path / "p.zip")
    patch_central(path, "metadata.xml", crc=central_field(path, "metadata.xml", "crc") ^ 1)
    with pytest.raises(Refusal) as caught:
        read_member(path, "metadata.xml", max_bytes=MiB)
    assert str(caught.value) == "validate: entry 'metadata.xml' is corrupt (bad CRC)"


def test_it_streams_an_inner_zip_of_a_bundle(tmp_path: Path) -> None:
    inner = package_zip(tmp_path / "inner.zip").read_bytes()
    bundle = make_zip(tmp_path / "b.zip", [("A.zip", inner)])
    out = io.BytesIO()
    extract_member_to(bundle, "A.zip", out, max_bytes=len(inner))
    assert out.getvalue() == inner
    with pytest.raises(Refusal) as caught:
        extract_member_to(bundle, "A.zip", io.BytesIO(), max_bytes=len(inner) - 1)
    assert caught.value.step == "unzip"
    assert "'A.zip'" in caught.value.reason


# --- extraction ------------------------------------------------------------------------------------------


def javascript(size: int) -> bytes:
    """Text that compresses like real code (a ratio of a few, not thousands)."""
    words = [b"var", b"function", b"return", b"this", b"widget", b"=", b"{", b"}", b";\n"]
    rng = random.Random(7)
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" " + str(rng.randrange(10**6)).encode() + b" "
    return bytes(out)


def extract(path: Path, dest: Path, limits: Limits = LIMITS, plan: ZipPlan | None = None) -> None:
    dest.mkdir()
    extract_zip(path, dest, plan=plan or inspect_zip(path, limits=LIMITS), limits=limits)


def test_it_extracts_exactly_the_zip_files_byte_for_byte(tmp_path: Path) -> None:
    path = package_zip(
        tmp_path / "p.zip",
        [
            ("empty.txt", b""),
            (info("lib/big.jar", compress_type=zipfile.ZIP_STORED), os.urandom(3 * MiB + 17)),
            ("lib/big-deflated.jar", os.urandom(2 * MiB + 5)),
            ("ui/w/text.js", javascript(3 * MiB)),  # decompresses in several pieces
            ("Entities/", b""),
            ("emptydir/", b""),
        ],
    )
    dest = tmp_path / "out"
    extract(path, dest)

    with zipfile.ZipFile(path) as archive:
        expected = {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}
    assert files_under(dest) == expected
    assert (dest / "emptydir").is_dir()
    assert (dest / "lib" / "common").is_dir()
    assert not any(p.is_symlink() for p in dest.rglob("*"))


def test_it_skips_what_it_is_told_to(tmp_path: Path) -> None:
    path = package_zip(tmp_path / "p.zip")
    dest = tmp_path / "out"
    dest.mkdir()
    extract_zip(path, dest, plan=inspect_zip(path, limits=LIMITS), limits=LIMITS, skip=lambda n: n == "metadata.xml")
    assert "metadata.xml" not in files_under(dest)
    assert "lib/common/mqttbridge.jar" in files_under(dest)


def assert_refused_at_unzip(path: Path, dest: Path, limits: Limits = LIMITS) -> Refusal:
    """Refused at unzip, dest emptied again, and nothing written beside it."""
    before = sorted(p.name for p in dest.parent.iterdir())
    with pytest.raises(Refusal) as caught:
        extract(path, dest, limits)
    assert caught.value.step == "unzip"
    assert list(dest.iterdir()) == []
    assert sorted(p.name for p in dest.parent.iterdir()) == sorted([*before, dest.name])
    return caught.value


def test_it_refuses_an_entry_that_unpacks_to_more_than_it_declares(tmp_path: Path) -> None:
    # Small declared size, so the ratio check cannot catch it: only counting real bytes can.
    path = package_zip(tmp_path / "p.zip", [("lib/liar.bin", b"0123456789abcdef" * 40_000)])
    patch_central(path, "lib/liar.bin", size=1000)
    reason = assert_refused_at_unzip(path, tmp_path / "out").reason
    assert reason == "entry 'lib/liar.bin' unpacks to more than the 1000 bytes it declares"


def test_it_refuses_an_entry_that_unpacks_to_less_than_it_declares(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [("a.txt", b"x" * 1000)])
    patch_central(path, "a.txt", size=2000)
    reason = assert_refused_at_unzip(path, tmp_path / "out").reason
    assert reason == "entry 'a.txt' is corrupt (it ends early)"


def test_it_counts_real_bytes_against_the_total_limit(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [("a", os.urandom(600)), ("b", os.urandom(600))])
    reason = assert_refused_at_unzip(path, tmp_path / "out", Limits(max_unpacked_bytes=1000)).reason
    assert reason == "the package unpacks to more bytes than the configured limit"


def test_it_refuses_a_bad_crc_while_unpacking(tmp_path: Path) -> None:
    path = package_zip(tmp_path / "p.zip")
    name = "lib/common/mqttbridge.jar"
    patch_central(path, name, crc=central_field(path, name, "crc") ^ 0xFFFF)
    assert assert_refused_at_unzip(path, tmp_path / "out").reason == f"entry '{name}' is corrupt (bad CRC)"


def test_it_refuses_corrupt_compressed_data(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [("a.txt", b"hello " * 1000)])
    data = bytearray(path.read_bytes())
    start = data_offset(path, "a.txt")
    data[start : start + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    reason = assert_refused_at_unzip(path, tmp_path / "out").reason
    assert reason.startswith("entry 'a.txt' is corrupt")


@pytest.mark.parametrize("now", [[("a.txt", b"x"), ("b.txt", b"y")], [("../a.txt", b"x")]])
def test_it_refuses_a_zip_that_changed_after_it_was_checked(tmp_path: Path, now: list[tuple[str, bytes]]) -> None:
    path = make_zip(tmp_path / "p.zip", [("a.txt", b"x")])
    plan = inspect_zip(path, limits=LIMITS)
    make_zip(path, now)
    with pytest.raises(Refusal, match="changed after it was checked"):
        extract(path, tmp_path / "out", plan=plan)


def test_it_refuses_a_destination_that_is_not_empty(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [("a.txt", b"x")])
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "mine.txt").write_text("the caller's")
    with pytest.raises(Refusal, match="destination folder is not empty"):
        extract_zip(path, dest, plan=inspect_zip(path, limits=LIMITS), limits=LIMITS)
    assert (dest / "mine.txt").read_text() == "the caller's"


def test_it_never_writes_through_a_link_planted_while_it_runs(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    path = make_zip(tmp_path / "p.zip", [("a.txt", b"overwritten")])
    dest = tmp_path / "out"
    dest.mkdir()

    def plant_link(name: str) -> bool:
        # skip() runs after the emptiness check and before any file is written: a race window.
        (dest / name).symlink_to(outside)
        return False

    with pytest.raises(Refusal) as caught:
        extract_zip(path, dest, plan=inspect_zip(path, limits=LIMITS), limits=LIMITS, skip=plant_link)
    assert caught.value.step == "unzip"
    assert outside.read_text() == "keep me"
    assert list(dest.iterdir()) == []


class _Unseekable:
    """A write-only stream, so zipfile writes data descriptors as streaming tools (Java) do."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: bytes) -> int:
        return self.buffer.write(data)

    def flush(self) -> None:
        pass


def test_it_accepts_streamed_zips_with_data_descriptors(tmp_path: Path) -> None:
    stream = _Unseekable()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as archive:  # type: ignore[arg-type]
        archive.writestr("metadata.xml", b"<Entities/>")
        archive.writestr("lib/x.jar", os.urandom(5000))
    path = tmp_path / "p.zip"
    path.write_bytes(stream.buffer.getvalue())
    assert central_field(path, "lib/x.jar", "flags") & 0x08

    extract(path, tmp_path / "out")
    assert (tmp_path / "out" / "metadata.xml").read_bytes() == b"<Entities/>"
    assert len((tmp_path / "out" / "lib" / "x.jar").read_bytes()) == 5000


def test_it_ignores_the_local_header_sizes(tmp_path: Path) -> None:
    # Only the central directory is trusted; a lying local header changes nothing.
    path = make_zip(tmp_path / "p.zip", [("a.txt", b"hello")])
    patch_local(path, "a.txt", size=1, compress_size=1)
    extract(path, tmp_path / "out")
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"hello"


@settings(max_examples=300, deadline=None, database=None)
@given(names=st.lists(st.text(alphabet="aC./\\:\x00\n é", min_size=1, max_size=12), min_size=1, max_size=4))
def test_it_never_plans_a_path_outside_the_package(tmp_path_factory: pytest.TempPathFactory, names: list[str]) -> None:
    path = tmp_path_factory.mktemp("prop") / "p.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make_zip(path, [(info(name), b"") for name in names])
    try:
        plan = inspect_zip(path, limits=LIMITS)
    except Refusal as refused:
        assert refused.step == "validate"
        return
    for member in plan.members:
        parts = member.name.split("/")
        assert "" not in parts and "." not in parts and ".." not in parts
        assert "\\" not in member.name and "\x00" not in member.name and "\n" not in member.name
        assert re.match("[A-Za-z]:", member.name) is None
        assert posixpath.normpath(f"/pkg/{member.name}").startswith("/pkg/")


def test_it_refuses_a_package_whose_whole_ratio_is_too_high(tmp_path: Path) -> None:
    """Every entry is under the per-entry check's floor; together they are a zip bomb."""
    path = make_zip(tmp_path / "p.zip", [(f"lib/z{i}.bin", b"\x00" * 512 * 1024) for i in range(8)])
    with pytest.raises(Refusal) as refused:
        inspect_zip(path, limits=LIMITS)
    assert refused.value.reason.startswith(
        f"the package would unpack to {8 * 512 * 1024} bytes from a zip of {path.stat().st_size} bytes (ratio "
    )
    assert "this looks like a zip bomb" in refused.value.reason


def test_it_lets_a_tiny_package_compress_as_well_as_it_likes(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [("metadata.xml", b"<x/>"), ("lib/z.bin", b"\x00" * 900 * 1024)])
    assert inspect_zip(path, limits=LIMITS).total_size == 900 * 1024 + 4


# --- one read: hash, check and unpack together ------------------------------------------------


def _tree(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))
    }


def test_it_hashes_and_unpacks_in_one_read_exactly_what_extract_writes(tmp_path: Path) -> None:
    import hashlib

    from extadmin.packaging.safezip import READ_BLOCK, unpack_hashed

    big = random.Random(3).randbytes(READ_BLOCK + 12345)  # spans two read blocks
    stored = info("lib/raw.bin", compress_type=zipfile.ZIP_STORED)
    path = package_zip(tmp_path / "p.zip", [("lib/big.jar", big), (stored, big[:99])])
    plan = inspect_zip(path, limits=LIMITS)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    extract_zip(path, tmp_path / "a", plan=plan, limits=LIMITS)

    digest = unpack_hashed(path, tmp_path / "b", plan=plan, limits=LIMITS, step="validate")

    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert _tree(tmp_path / "b") == _tree(tmp_path / "a")


def test_it_refuses_a_bad_crc_in_the_one_read_with_the_validation_s_words_and_empties_the_folder(
    tmp_path: Path,
) -> None:
    from extadmin.packaging.safezip import unpack_hashed

    path = package_zip(tmp_path / "p.zip")
    patch_central(path, "Entities/DataShapes_Y.xml", crc=central_field(path, "Entities/DataShapes_Y.xml", "crc") ^ 1)
    plan = inspect_zip(path, limits=LIMITS)
    dest = tmp_path / "out"
    dest.mkdir()

    with pytest.raises(Refusal) as caught:
        unpack_hashed(path, dest, plan=plan, limits=LIMITS, step="validate")

    assert str(caught.value) == "validate: entry 'Entities/DataShapes_Y.xml' is corrupt (bad CRC)"
    assert list(dest.iterdir()) == []


def test_it_refuses_a_package_over_the_budget_in_the_one_read(tmp_path: Path) -> None:
    from extadmin.packaging.safezip import unpack_hashed

    path = package_zip(tmp_path / "p.zip")
    plan = inspect_zip(path, limits=LIMITS)
    dest = tmp_path / "out"
    dest.mkdir()

    with pytest.raises(Refusal, match=r"^validate: the package unpacks to more bytes than the configured limit$"):
        unpack_hashed(path, dest, plan=plan, limits=Limits(max_unpacked_bytes=100), step="validate")
    assert list(dest.iterdir()) == []


def test_it_names_the_first_bad_entry_when_files_are_written_by_several_threads(tmp_path: Path) -> None:
    from extadmin.packaging.safezip import EXTRACT_THREADS

    files = [(f"ui/w{i:03d}.js", f"// widget {i}\n".encode() * 50) for i in range(8 * EXTRACT_THREADS)]
    path = package_zip(tmp_path / "p.zip", files)
    for bad in ("ui/w031.js", "ui/w006.js", "ui/w013.js"):  # in several threads' shares
        patch_central(path, bad, crc=central_field(path, bad, "crc") ^ 1)
    dest = tmp_path / "out"
    dest.mkdir()

    with pytest.raises(Refusal) as caught:
        extract_zip(path, dest, plan=inspect_zip(path, limits=LIMITS), limits=LIMITS)

    assert str(caught.value) == "unzip: entry 'ui/w006.js' is corrupt (bad CRC)"  # the first in the zip
    assert list(dest.iterdir()) == []


def test_it_writes_every_file_when_several_threads_share_the_work(tmp_path: Path) -> None:
    from extadmin.packaging.safezip import EXTRACT_THREADS

    files = [(f"ui/{i % 5}/w{i:03d}.js", random.Random(i).randbytes(3000 + i)) for i in range(8 * EXTRACT_THREADS)]
    path = package_zip(tmp_path / "p.zip", files)
    dest = tmp_path / "out"
    dest.mkdir()

    extract_zip(path, dest, plan=inspect_zip(path, limits=LIMITS), limits=LIMITS)

    for name, data in files:
        assert (dest / name).read_bytes() == data
    with zipfile.ZipFile(path) as zf:
        assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == sorted(
            n for n in zf.namelist() if not n.endswith("/")
        )
