"""A generator of hostile extension packages: every "Bad packages" case of reliability.md.

``hostile_corpus(folder, seed=...)`` writes one file per case and returns what each must be refused
with. Names, nesting, payloads and the package's own name are drawn from ``seed``, so a corpus made
with a fresh seed is one that is in no repository (the issue's "a hostile corpus that is not in
the repo"). Every case is built from bytes here (zipfile, then patched headers): nothing is read
from a fixture file.

Limits the corpus relies on (small so the files stay small): ``LIMITS_ENV``.
"""
from __future__ import annotations

import io
import random
import stat
import string
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from tests.zipcraft import central_records, patch_entry, raw_entry, write_zip

MAX_ENTRIES = 50
MAX_UNPACKED = 256 * 1024
MAX_UPLOAD = 512 * 1024
MAX_ENTITIES = 20
LIMITS_ENV = {
    "EXTADMIN_MAX_ENTRIES": str(MAX_ENTRIES),
    "EXTADMIN_MAX_ENTITIES": str(MAX_ENTITIES),
    "EXTADMIN_MAX_UNPACKED_BYTES": str(MAX_UNPACKED),
    "EXTADMIN_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
}
LIMITS_SETTINGS = {k: int(v) for k, v in LIMITS_ENV.items()}
# The corpus runs under an import policy that forbids web apps (ThingWorx's allowWebAppResources),
# so a web app disguised among a package's ui/ files is one of the hostile cases.
CORPUS_POLICY = {"allowWebAppResources": False}
# The package installed before each case (``world`` in test_hostile.py), whose entity a case claims.
INSTALLED = "Base"


@dataclass(frozen=True)
class HostileCase:
    label: str
    path: Path
    expect: str  # a fragment the refusal's reason must contain (lower case)
    status: int = 400  # what an HTTP door answers
    http_only: bool = False  # the upload limit is a property of the HTTP doors


Entry = tuple[str | zipfile.ZipInfo, bytes]


class _Gen:
    """Draws names and payloads from one seeded random source."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.name = "Hx" + "".join(self.rng.choices(string.ascii_letters + string.digits, k=8))

    def word(self, k: int = 6) -> str:
        return "".join(self.rng.choices(string.ascii_lowercase, k=k))

    def blob(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def dirs(self) -> str:
        return "/".join(self.word() for _ in range(self.rng.randint(0, 2)))

    def inner(self, name: str) -> str:
        """``name`` under 0–2 random folders."""
        d = self.dirs()
        return f"{d}/{name}" if d else name

    def metadata(self, name: str | None = None, **attrs: str) -> str:
        fields = {"name": name or self.name, "packageVersion": "1.0.0", "haCompatible": "true", **attrs}
        at = " ".join(f"{k}={quoteattr(v)}" for k, v in fields.items() if v is not None)
        return f'<Entities><ExtensionPackages><ExtensionPackage {at}/></ExtensionPackages></Entities>'

    def good(self) -> list[Entry]:
        return [
            ("metadata.xml", self.metadata().encode()),
            (f"lib/{self.word()}.jar", self.blob(self.rng.randint(500, 3000))),
            (f"ui/{self.word()}/{self.word()}.js", self.word(40).encode()),
        ]


def _billion_laughs(name: str) -> str:
    lol = "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    return (
        f'<?xml version="1.0"?><!DOCTYPE Entities [<!ENTITY l0 "lol">{lol}]>'
        f'<Entities><ExtensionPackages><ExtensionPackage name="{name}" packageVersion="1.0.0" '
        'description="&l9;"/></ExtensionPackages></Entities>'
    )


def _xxe(name: str) -> str:
    return (
        '<?xml version="1.0"?><!DOCTYPE Entities [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        f'<Entities><ExtensionPackages><ExtensionPackage name="{name}" packageVersion="1.0.0" '
        'description="&xxe;"/></ExtensionPackages></Entities>'
    )


def _cases(g: _Gen) -> list[tuple[str, Callable[[Path], Path], str, int, bool]]:
    """(label, builder, expected fragment, HTTP status, HTTP only)."""
    n = g.name

    def w(extra: list[Entry]) -> Callable[[Path], Path]:
        return lambda p: write_zip(p, [*g.good(), *extra])

    def meta(text: str) -> Callable[[Path], Path]:
        return lambda p: write_zip(p, [("metadata.xml", text.encode()), (f"lib/{g.word()}.jar", g.blob(900))])

    def lying(p: Path) -> Path:
        write_zip(p, [*g.good(), ("lib/big.bin", b"\x00" * 100_000)])
        return patch_entry(p, "lib/big.bin", size=1000)

    def overlapping(p: Path) -> Path:
        write_zip(p, [*g.good(), ("lib/a.bin", b"A" * 5000), ("lib/b.bin", b"B" * 5000)])
        data = p.read_bytes()
        first = struct.unpack_from("<L", data, central_records(data)[3] + 42)[0]
        return patch_entry(p, "lib/b.bin", offset=first)

    def hardlink(p: Path) -> Path:
        # Zip has no hard-link type: its equivalent is two entries sharing one local record.
        write_zip(p, [*g.good(), ("lib/data.bin", g.blob(4000)), ("lib/link.bin", g.blob(4000))])
        data = p.read_bytes()
        first = struct.unpack_from("<L", data, central_records(data)[3] + 42)[0]
        return patch_entry(p, "lib/link.bin", offset=first)

    def bad_crc(p: Path) -> Path:
        write_zip(p, [*g.good(), ("lib/data.bin", g.blob(4096))])
        return patch_entry(p, "lib/data.bin", crc=0xDEADBEEF)

    def encrypted(p: Path) -> Path:
        write_zip(p, [*g.good(), ("lib/secret.bin", b"secret" * 200)])
        return patch_entry(p, "lib/secret.bin", flags=0x1)

    def truncated(p: Path) -> Path:
        write_zip(p, [*g.good(), ("lib/more.bin", g.blob(8192))])
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
        return p

    def hostile_bundle(p: Path) -> Path:
        inner = io.BytesIO()
        with zipfile.ZipFile(inner, "w") as zf:
            for entry, data in [*g.good(), ("../../evil.txt", b"x")]:
                zf.writestr(entry, data)
        other = io.BytesIO()
        with zipfile.ZipFile(other, "w") as zf:
            zf.writestr("metadata.xml", g.metadata(name=n + "Ok"))
        with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr(f"{n}Ok.zip", other.getvalue())
            zf.writestr(f"{n}.zip", inner.getvalue())
        return p

    def stray_signature(p: Path) -> Path:
        # A member's signature sits beside it (A.zip.sig by A.zip); one that signs no member would be
        # ignored, and the operator believe that member signed.
        inner = io.BytesIO()
        with zipfile.ZipFile(inner, "w") as zf:
            for entry, data in g.good():
                zf.writestr(entry, data)
        with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr(f"{n}.zip", inner.getvalue())
            zf.writestr(f"{n}Gone.zip.sig", b"-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----\n")
        return p

    def same_entity_twice(p: Path) -> Path:
        entity = f'<Things><Thing name="{n}Shared"/></Things>'
        with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as zf:
            for member in (f"{n}A", f"{n}B"):
                inner = io.BytesIO()
                with zipfile.ZipFile(inner, "w") as mz:
                    mz.writestr("metadata.xml", g.metadata(name=member).replace("</Entities>", entity + "</Entities>"))
                zf.writestr(f"{member}.zip", inner.getvalue())
        return p

    def small_zero_packages(p: Path) -> Path:
        # Each member stays under the ratio check's floor and the unpacked limit; together they do not.
        with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as zf:
            for i in range(40):
                member = io.BytesIO()
                with zipfile.ZipFile(member, "w", zipfile.ZIP_DEFLATED) as inner:
                    inner.writestr("metadata.xml", g.metadata(name=f"{n}Z{i}"))
                    inner.writestr("lib/zeros.bin", b"\x00" * 200 * 1024)
                zf.writestr(f"{n}Z{i}.zip", member.getvalue())
        return p

    def text(content: bytes) -> Callable[[Path], Path]:
        return lambda p: (p.write_bytes(content), p)[1]

    def oversized(p: Path) -> Path:
        return write_zip(p, [("metadata.xml", g.metadata().encode()),
                             (raw_entry("lib/big.bin", method=zipfile.ZIP_STORED), g.blob(MAX_UPLOAD + 200_000))])

    pkg = '<Entities><ExtensionPackages><ExtensionPackage {}/></ExtensionPackages></Entities>'
    slip = "escapes the package folder"
    return [
        ("zip slip ../x", w([(f"../{g.word()}.txt", b"x")]), "escapes the package folder", 400, False),
        ("zip slip a/../../x", w([(f"{g.word()}/../../{g.word()}.txt", b"x")]), slip, 400, False),
        ("zip slip deep lib/../../../x", w([("lib/../../../etc/cron.d/x", b"x")]), slip, 400, False),
        ("absolute /abs", w([(f"/tmp/{g.word()}.txt", b"x")]), "absolute path", 400, False),
        ("drive C:/x", w([(f"C:/Windows/{g.word()}.dll", b"x")]), "absolute path", 400, False),
        ("drive C:\\x", w([(f"C:\\{g.word()}.txt", b"x")]), "backslash", 400, False),
        ("backslash ..\\x", w([(f"..\\{g.word()}.txt", b"x")]), "backslash", 400, False),
        ("NUL in name", w([(raw_entry(g.inner(f"{g.word()}\x00.txt")), b"x")]), "control character", 400, False),
        ("escape char in name", w([(raw_entry(g.inner("a\x1b[31m.txt")), b"x")]), "control character", 400, False),
        ("newline in name", w([(raw_entry(g.inner("a\nb.txt")), b"x")]), "control character", 400, False),
        ("over-long name", w([("lib/" + "ab/" * 400 + "x.txt", b"x")]), "longer than", 400, False),
        ("over-long component", w([("lib/" + "a" * 300 + ".txt", b"x")]), "longer than 255", 400, False),
        ("symlink", w([(raw_entry(g.inner("link"), mode=stat.S_IFLNK | 0o777), b"/etc/passwd")]),
         "symbolic link", 400, False),
        ("hardlink (shared local record)", hardlink, "overlaps", 400, False),
        ("character device", w([(raw_entry(g.inner("tty"), mode=stat.S_IFCHR | 0o644), b"")]), "device", 400, False),
        ("block device", w([(raw_entry(g.inner("sda"), mode=stat.S_IFBLK | 0o644), b"")]), "device", 400, False),
        ("FIFO", w([(raw_entry(g.inner("fifo"), mode=stat.S_IFIFO | 0o644), b"")]), "fifo", 400, False),
        ("socket", w([(raw_entry(g.inner("sock"), mode=stat.S_IFSOCK | 0o644), b"")]), "socket", 400, False),
        ("zip bomb ratio", w([("lib/zeros.bin", b"\x00" * (8 * 1024 * 1024))]), "zip bomb", 400, False),
        ("many small zero entries (whole ratio)", w([(f"lib/z{i}.bin", b"\x00" * 65536) for i in range(40)]),
         "from a zip of", 400, False),
        ("lying declared size", lying, "lib/big.bin", 400, False),
        ("overlapping entries", overlapping, "overlaps", 400, False),
        ("too many entries", w([(f"lib/f{i}.txt", b"x") for i in range(MAX_ENTRIES + 5)]), "more than the limit",
         400, False),
        ("unpacked size over limit", w([("lib/big.bin", g.blob(MAX_UNPACKED + 50_000))]), "more than the limit",
         400, False),
        ("duplicate names", w([("lib/dup.txt", b"1"), ("lib/dup.txt", b"2")]), "more than once", 400, False),
        ("duplicate after normalising", w([("lib/x.txt", b"1"), ("lib/./x.txt", b"2")]), "more than once", 400, False),
        ("duplicate after cleaning //", w([("lib/y.txt", b"1"), ("lib//y.txt", b"2")]), "more than once", 400, False),
        ("duplicate after cleaning ./", w([("./metadata.xml", g.metadata().encode())]), "more than once", 400, False),
        ("trailing dot in a name", w([(g.inner(f"{g.word()}.txt."), b"x")]), "ends with a dot or a space", 400, False),
        ("trailing space in a folder", w([(f"lib/{g.word()} /x.txt", b"x")]), "ends with a dot or a space", 400, False),
        ("file under a file", w([("lib/x", b"1"), ("lib/x/y", b"2")]), "which is a file", 400, False),
        ("<name>.chk collision", w([(f"{n}.chk", b"0" * 64)]), f"{n.lower()}.chk", 400, False),
        ("<NAME>.CHK collision (case)", w([(f"{n.upper()}.CHK", b"0" * 64)]), ".chk", 400, False),
        ("encrypted", encrypted, "encrypted", 400, False),
        ("unsupported compression bzip2", w([(raw_entry("lib/b.bin", method=zipfile.ZIP_BZIP2), b"b" * 500)]),
         "compression", 400, False),
        ("unsupported compression lzma", w([(raw_entry("lib/l.bin", method=zipfile.ZIP_LZMA), b"l" * 500)]),
         "compression", 400, False),
        ("not a zip (text)", text(b"this is not a zip\n" * 3), "not a zip", 400, False),
        ("not a zip (random bytes)", text(g.blob(3000)), "not a zip", 400, False),
        ("empty file", text(b""), "empty", 400, False),
        ("empty zip", lambda p: write_zip(p, []), "empty zip", 400, False),
        ("truncated", truncated, "truncated", 400, False),
        ("bad CRC", bad_crc, "crc", 400, False),
        ("missing metadata.xml", lambda p: write_zip(p, [("lib/a.jar", g.blob(100))]), "metadata.xml is missing",
         400, False),
        ("metadata.xml only in a subfolder",
         lambda p: write_zip(p, [(f"{g.word()}/metadata.xml", g.metadata().encode())]),
         "metadata.xml is missing", 400, False),
        ("malformed XML", meta("<Entities><ExtensionPackages>"), "malformed xml", 400, False),
        ("DTD / XXE", meta(_xxe(n)), "dtd", 400, False),
        ("billion laughs", meta(_billion_laughs(n)), "dtd", 400, False),
        ("wrong root element", meta(f'<Things><ExtensionPackage name="{n}" packageVersion="1.0.0"/></Things>'),
         "root element", 400, False),
        ("no ExtensionPackage", meta("<Entities><ExtensionPackages/></Entities>"), "no <extensionpackage>", 400, False),
        ("two ExtensionPackages", meta(
            f'<Entities><ExtensionPackages><ExtensionPackage name="{n}" packageVersion="1.0.0"/>'
            f'<ExtensionPackage name="{n}2" packageVersion="1.0.0"/></ExtensionPackages></Entities>'),
         "2 <extensionpackage>", 400, False),
        ("missing name", meta(pkg.format('packageVersion="1.0.0"')), "has no name", 400, False),
        ("missing packageVersion", meta(pkg.format(f'name="{n}"')), "has no packageversion", 400, False),
        ("unsafe name ../x", meta(pkg.format('name="../x" packageVersion="1.0.0"')), "not a safe folder name",
         400, False),
        ("unsafe name a/b", meta(pkg.format('name="a/b" packageVersion="1.0.0"')), "not a safe folder name",
         400, False),
        ("unsafe name .hidden", meta(pkg.format('name=".hidden" packageVersion="1.0.0"')), "not a safe folder name",
         400, False),
        ("unsafe name with markup", meta(pkg.format('name="&lt;b&gt;x" packageVersion="1.0.0"')),
         "not a safe folder name", 400, False),
        ("too many entities", meta(
            "<Entities><ExtensionPackages>"
            f'<ExtensionPackage name="{n}" packageVersion="1.0.0" haCompatible="true"/></ExtensionPackages><Things>'
            + "".join(f'<Thing name="{g.word()}{i}"/>' for i in range(MAX_ENTITIES + 1)) + "</Things></Entities>"),
         f"declares {MAX_ENTITIES + 1} entities, more than the limit of {MAX_ENTITIES}", 400, False),
        ("bundle of small zero packages (ratio together)", small_zero_packages, "imported together would unpack to",
         400, False),
        ("bundle with a zip-slip member", hostile_bundle, "escapes the package folder", 400, False),
        ("bundle with a signature of no member", stray_signature, f"{n.lower()}gone.zip.sig' is a signature with no",
         400, False),
        ("entity an installed package declares", meta(
            g.metadata().replace("</Entities>", f'<Things><Thing name="{INSTALLED}Thing"/></Things></Entities>')),
         f"thing '{INSTALLED.lower()}thing' is already declared by {INSTALLED.lower()}:1.0.0", 400, False),
        ("bundle members declaring one entity", same_entity_twice, f"thing '{n.lower()}shared' is declared by both",
         400, False),
        ("web app hidden in ui/ (WEB-INF) under the policy", w([(f"ui/{g.word()}/WEB-INF/web.xml", b"<web-app/>")]),
         "forbids web app resources (allowwebappresources is false)", 400, False),
        ("web app as an upper-case .WAR under the policy", w([(g.inner(f"{g.word()}.WAR"), g.blob(700))]),
         "allowwebappresources is false", 400, False),
        ("web app by its index.html under the policy", w([(f"ui/{g.word()}/index.html", b"<html></html>")]),
         "(an index.html)", 400, False),
        ("upload over the size limit", oversized, "larger than the limit", 413, True),
    ]


def hostile_corpus(folder: Path, *, seed: int = 0) -> list[HostileCase]:
    """Write every case under ``folder``; returns them in order."""
    folder.mkdir(parents=True, exist_ok=True)
    g = _Gen(seed)
    out = []
    for i, (label, build, expect, status, http_only) in enumerate(_cases(g)):
        slug = "".join(c if c.isalnum() else "-" for c in label)
        path = build(folder / f"{i:02d}-{slug}.zip")
        out.append(HostileCase(label, path, expect.lower(), status, http_only))
    return out


LABELS = [label for label, *_ in _cases(_Gen(0))]


def markup_package(folder: Path, *, seed: int = 0) -> tuple[Path, str, list[str]]:
    """A valid package whose fields carry markup: accepted, and shown escaped everywhere.

    Returns (path, package name, the raw markup strings that must never appear unescaped).
    """
    g = _Gen(seed)
    script = f"<script>alert('{g.word()}')</script>"
    img = f'<img src=x onerror="alert({g.rng.randint(1, 999)})">'
    name = g.name + "Markup"
    text = g.metadata(name=name, description=script, vendor=img, buildNumber="<b>bold</b>")
    path = write_zip(folder / f"{name}.zip", [("metadata.xml", text.encode()), ("lib/a.jar", g.blob(500))])
    return path, name, [script, img, "<b>bold</b>"]
