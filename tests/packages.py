"""Build real extension package zips on disk for tests (and benchmarks)."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "metadata"
if not FIXTURES.is_dir():  # CI lays shared/ beside the clone
    FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "metadata"


def metadata_xml(
    name: str,
    version: str = "1.0.0",
    *,
    depends_on: str = "",
    ha_compatible: str | None = "true",
    description: str = "",
    vendor: str = "extadmin tests",
    entities: str = "",
) -> str:
    ha = f" haCompatible={quoteattr(ha_compatible)}" if ha_compatible is not None else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Entities>\n  <ExtensionPackages>\n'
        f"    <ExtensionPackage name={quoteattr(name)} packageVersion={quoteattr(version)} vendor={quoteattr(vendor)}"
        f" description={quoteattr(description)} minimumThingWorxVersion=\"9.0.0\""
        f" dependsOn={quoteattr(depends_on)}{ha}/>\n"
        f"  </ExtensionPackages>\n{entities or _default_entities(name)}</Entities>\n"
    )


def _default_entities(name: str) -> str:
    return f'  <Things>\n    <Thing name="{name}Thing" description=""/>\n  </Things>\n'


def build_package(
    folder: Path,
    name: str,
    version: str = "1.0.0",
    *,
    depends_on: str = "",
    ha_compatible: str | None = "true",
    description: str = "",
    metadata: str | None = None,
    files: dict[str, bytes] | None = None,
    filename: str | None = None,
) -> Path:
    """A package zip: metadata.xml, a jar, a widget file and an entity file (or ``files``)."""
    path = folder / (filename or f"{name}-{version}.zip")
    text = metadata or metadata_xml(
        name, version, depends_on=depends_on, ha_compatible=ha_compatible, description=description
    )
    if files is None:
        files = {
            f"lib/{name.lower()}.jar": os.urandom(4096),
            f"ui/{name}/{name.lower()}.js": f"/* {name} {version} */\n".encode(),
            f"Entities/Things/Things_{name}Thing.xml": b"<Entities/>",
        }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("lib/", b"")
        zf.writestr("metadata.xml", text)
        for entry, data in files.items():
            zf.writestr(entry, data)
    return path


def build_fixture_package(folder: Path, fixture: str) -> Path:
    """A package around one of the shared sample metadata files."""
    import re

    text = (FIXTURES / fixture).read_text()
    name = re.search(r'<ExtensionPackage\b[^>]*?\bname="([^"]*)"', text, re.S).group(1)  # type: ignore[union-attr]
    return build_package(folder, name, metadata=text, filename=f"{name}.zip")


def build_bundle(folder: Path, name: str, packages: list[Path]) -> Path:
    path = folder / f"{name}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for p in packages:
            zf.write(p, p.name)
    return path


def zip_files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}


def folder_files(folder: Path, *, skip: str | None = None) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.name != skip
    }
