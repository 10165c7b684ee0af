"""Parsing ``metadata.xml``: the one file that says what a package is.

Everything in it is untrusted. It is parsed with defusedxml so DTDs, entity declarations and
external references (XXE, billion laughs) are refused before they can expand. Field values are
kept as text, markup included: escaping is the templates' job, and stripping here would hide what
the package really says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, ParseError

import defusedxml
from defusedxml.ElementTree import fromstring

from extadmin.packaging.dependencies import Dependency, parse_depends_on
from extadmin.packaging.errors import Refusal, shown
from extadmin.packaging.names import is_safe_name
from extadmin.packaging.versions import parse_version

_HA_VALUES = {"true": True, "false": False}


@dataclass(frozen=True)
class EntityDecl:
    type: str  # the element tag, e.g. "Thing", "ThingTemplate", "Resource", "Widget"
    name: str
    # Declared ``aspect.isExtensible="true"``: others may extend it after import (the import
    # policy's allowExtensibleEntities). Left out of equality: one entity is its type and name.
    extensible: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class FileResourceDecl:
    """A ``<FileResource type="JAR" file="x.jar"/>`` anywhere in metadata.xml (JarResources, UIResources, ...)."""

    type: str  # as written: "JAR", "JS", "CSS", "JSON", ...
    file: str


@dataclass(frozen=True)
class PackageMetadata:
    name: str
    version: str
    vendor: str
    description: str
    minimum_platform_version: str
    depends_on_raw: str
    depends_on: tuple[Dependency, ...]
    build_number: str
    ha_compatible: bool | None  # None when the attribute is absent (platforms before 9.0)
    entities: tuple[EntityDecl, ...]
    resources: tuple[FileResourceDecl, ...] = ()


def _refuse(reason: str) -> Refusal:
    return Refusal("validate", f"metadata.xml: {reason}")


def parse_metadata(data: bytes) -> PackageMetadata:
    """Parse and check ``metadata.xml``; refuse anything an import could not rely on."""
    root = _parse_xml(data)
    if root.tag != "Entities":
        raise _refuse(f"the root element is <{shown(root.tag)}>, expected <Entities>")
    package = _the_extension_package(root)
    attrs = package.attrib

    name = attrs.get("name", "").strip()
    if not name:
        raise _refuse("ExtensionPackage has no name")
    if not is_safe_name(name):
        raise _refuse(
            f"name '{shown(name)}' is not a safe folder name "
            "(letters, digits, '_', '.', '-'; at most 128; no '..'; not ending in '.')"
        )
    version = attrs.get("packageVersion", "").strip()
    if not version:
        raise _refuse(f"ExtensionPackage '{name}' has no packageVersion")
    depends_on_raw = attrs.get("dependsOn", "")
    try:
        parse_version(version)
        depends_on = _parse_dependencies(name, depends_on_raw)
    except Refusal as refusal:
        raise _refuse(refusal.reason) from None

    return PackageMetadata(
        name=name,
        version=version,
        vendor=attrs.get("vendor", ""),
        description=attrs.get("description", ""),
        minimum_platform_version=attrs.get("minimumThingWorxVersion", ""),
        depends_on_raw=depends_on_raw,
        depends_on=depends_on,
        build_number=attrs.get("buildNumber", ""),
        ha_compatible=_parse_ha_compatible(attrs.get("haCompatible")),
        entities=_entities(root),
        resources=_resources(root),
    )


def _parse_xml(data: bytes) -> Element:
    # Bytes, not text: the parser must honour the encoding the file declares.
    try:
        return fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DTDForbidden:
        raise _refuse("a DTD (<!DOCTYPE ...>) is not allowed") from None
    except defusedxml.EntitiesForbidden:
        raise _refuse("entity declarations are not allowed") from None
    except defusedxml.ExternalReferenceForbidden:
        raise _refuse("external references are not allowed") from None
    except defusedxml.DefusedXmlException as exc:
        raise _refuse(f"{exc} is not allowed") from None
    except ParseError as exc:
        line, column = exc.position
        raise _refuse(f"malformed XML at line {line}, column {column + 1}") from None


def _the_extension_package(root: Element) -> Element:
    packages = root.findall("ExtensionPackages/ExtensionPackage")
    if not packages:
        raise _refuse("no <ExtensionPackage> in <ExtensionPackages>")
    if len(packages) > 1:
        raise _refuse(f"{len(packages)} <ExtensionPackage> elements; a package declares exactly one")
    return packages[0]


def _parse_dependencies(name: str, raw: str) -> tuple[Dependency, ...]:
    depends_on = parse_depends_on(raw)
    if any(dependency.name == name for dependency in depends_on):
        raise Refusal("validate", f"package '{name}' depends on itself")
    return depends_on


def _parse_ha_compatible(value: str | None) -> bool | None:
    if value is None or not value.strip():
        return None
    try:
        return _HA_VALUES[value.strip().lower()]
    except KeyError:
        raise _refuse(f"haCompatible '{shown(value)}' must be true or false") from None


def _entities(root: Element) -> tuple[EntityDecl, ...]:
    """Every named child of every collection under <Entities>, except ExtensionPackages."""
    entities: list[EntityDecl] = []
    for collection in root:
        if collection.tag == "ExtensionPackages":
            continue
        for child in collection:
            name = child.get("name")
            if isinstance(child.tag, str) and name:
                extensible = child.get("aspect.isExtensible", "").strip().lower() == "true"
                entities.append(EntityDecl(type=child.tag, name=name, extensible=extensible))
    return tuple(entities)


def _resources(root: Element) -> tuple[FileResourceDecl, ...]:
    """Every FileResource, wherever it is nested: the package's own JarResources and an entity's
    UIResources both make the platform load or serve that file."""
    return tuple(
        FileResourceDecl(type=element.get("type", "").strip(), file=element.get("file", ""))
        for element in root.iter("FileResource")
    )
