from __future__ import annotations

import pytest
from zipcraft import fixture_metadata

from extadmin.packaging import Dependency, EntityDecl, Refusal, is_safe_name, parse_metadata

pytestmark = pytest.mark.dbless  # no database, no broker: .ci/run runs it once


def metadata(attributes: str, body: str = "", *, prolog: str = '<?xml version="1.0" encoding="UTF-8"?>') -> bytes:
    return (
        f"{prolog}<Entities><ExtensionPackages><ExtensionPackage {attributes}/></ExtensionPackages>{body}</Entities>"
    ).encode()


def refused(data: bytes) -> str:
    with pytest.raises(Refusal) as caught:
        parse_metadata(data)
    assert caught.value.step == "validate"
    assert caught.value.reason.startswith("metadata.xml: ")
    return caught.value.reason


# --- real packages -------------------------------------------------------------------------------


def test_it_parses_a_java_extension_with_dependencies() -> None:
    meta = parse_metadata(fixture_metadata("JavaWithDependencies"))
    assert (meta.name, meta.version, meta.vendor) == ("MqttBridge", "3.1.4", "Example Labs")
    assert meta.minimum_platform_version == "9.3.0"
    assert meta.depends_on_raw == "CommonUtils:1.2.0;JsonTools:0.9.1"
    assert meta.depends_on == (Dependency("CommonUtils", "1.2.0"), Dependency("JsonTools", "0.9.1"))
    assert meta.build_number == '{"gitURL":"https://example.invalid/mqtt-bridge","commit":"4f2a9c1"}'
    assert meta.ha_compatible is True
    assert meta.entities == (
        EntityDecl("ThingPackage", "MqttBridgePackage"),
        EntityDecl("ThingTemplate", "MqttBridgeTemplate"),
        EntityDecl("ThingShape", "MqttSubscriberShape"),
        EntityDecl("DataShape", "MqttMessageShape"),
    )


def test_it_parses_a_widget_with_a_two_part_version() -> None:
    meta = parse_metadata(fixture_metadata("WidgetOnly"))
    assert (meta.name, meta.version) == ("StatusLampWidget", "2.2")
    assert meta.ha_compatible is True  # written "TRUE"
    assert meta.depends_on == ()
    assert meta.entities == (EntityDecl("Widget", "statuslamp"),)


def test_it_parses_a_package_without_ha_compatible() -> None:
    meta = parse_metadata(fixture_metadata("DataExporterExtension"))
    assert (meta.name, meta.version) == ("DataExporterExtension", "1.1.5")
    assert meta.ha_compatible is None
    assert meta.depends_on_raw == ""
    assert meta.entities == (
        EntityDecl("Resource", "InfotableExporterFunctions"),
        EntityDecl("Thing", "DataExporterRepository"),
        EntityDecl("Widget", "infotableExporter"),
    )


def test_it_parses_a_library_with_multi_line_attributes() -> None:
    meta = parse_metadata(fixture_metadata("CommonUtils"))
    assert (meta.name, meta.version, meta.vendor) == ("CommonUtils", "1.2.0", "")
    assert meta.description == "Shared helpers used by other extensions"
    assert meta.entities == (EntityDecl("ScriptFunctionLibrary", "CommonUtilsFunctions"),)


# --- accepted variations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("True", True), ("false", False), ("FALSE", False), ("", None)],
)
def test_it_reads_ha_compatible_in_any_case(value: str, expected: bool | None) -> None:
    meta = parse_metadata(metadata(f'name="P" packageVersion="1.0.0" haCompatible="{value}"'))
    assert meta.ha_compatible is expected


def test_it_keeps_markup_in_fields_as_text() -> None:
    meta = parse_metadata(
        metadata(
            'name="P" packageVersion="1.0.0" description="&lt;script&gt;alert(1)&lt;/script&gt;" '
            'vendor="A &amp; B" buildNumber="SNAPSHOT-12 - editable"'
        )
    )
    assert meta.description == "<script>alert(1)</script>"
    assert meta.vendor == "A & B"
    assert meta.build_number == "SNAPSHOT-12 - editable"


def test_it_accepts_comments_cdata_and_unnamed_children() -> None:
    body = (
        "<!-- a comment --><Things><!-- inside --><Thing name='T1'><![CDATA[<not markup>]]></Thing>"
        "<Thing/></Things><Mashups><Mashup name='M1'/></Mashups>"
    )
    meta = parse_metadata(metadata('name="P" packageVersion="1.0.0"', body))
    assert meta.entities == (EntityDecl("Thing", "T1"), EntityDecl("Mashup", "M1"))


def test_it_honours_a_declared_encoding() -> None:
    data = metadata(
        'name="P" packageVersion="1.0.0" vendor="Société Générale"',
        prolog='<?xml version="1.0" encoding="ISO-8859-1"?>',
    ).decode()
    assert parse_metadata(data.encode("latin-1")).vendor == "Société Générale"


def test_it_reads_utf16_with_a_byte_order_mark() -> None:
    data = metadata('name="P" packageVersion="1.0.0" vendor="Ünïcode"', prolog="").decode()
    assert parse_metadata(data.encode("utf-16")).vendor == "Ünïcode"


def test_it_accepts_comma_separated_dependencies() -> None:
    meta = parse_metadata(metadata('name="P" packageVersion="1.0.0" dependsOn="A:1.0.0, B:2.1"'))
    assert meta.depends_on == (Dependency("A", "1.0.0"), Dependency("B", "2.1"))


def test_it_trims_whitespace_around_name_and_version() -> None:
    meta = parse_metadata(metadata('name="\n   P  " packageVersion=" 0.20201103.083645 "'))
    assert (meta.name, meta.version) == ("P", "0.20201103.083645")


# --- refusals ------------------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Entities><ExtensionPackages><ExtensionPackage name="P" packageVersion="1.0.0" description="&lol3;"/>
</ExtensionPackages></Entities>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Entities [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Entities><ExtensionPackages><ExtensionPackage name="P" packageVersion="1.0.0" description="&xxe;"/>
</ExtensionPackages></Entities>"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_it_refuses_entity_attacks(data: bytes) -> None:
    assert "not allowed" in refused(data)


def test_it_refuses_a_bare_doctype() -> None:
    data = metadata('name="P" packageVersion="1.0.0"', prolog="<!DOCTYPE Entities>")
    assert refused(data) == "metadata.xml: a DTD (<!DOCTYPE ...>) is not allowed"


@pytest.mark.parametrize(
    "data",
    [b"", b"not xml", b"<Entities>", b"<Entities></Other>", b"\xff\xfe\x00garbage", b"<a/><b/>"],
)
def test_it_refuses_malformed_xml(data: bytes) -> None:
    assert refused(data).startswith("metadata.xml: malformed XML at line ")


def test_it_refuses_another_root_element() -> None:
    assert refused(b"<Things/>") == "metadata.xml: the root element is <Things>, expected <Entities>"


def test_it_refuses_a_package_without_extension_package() -> None:
    reason = refused(b"<Entities><ExtensionPackages/><Things/></Entities>")
    assert reason == "metadata.xml: no <ExtensionPackage> in <ExtensionPackages>"


def test_it_refuses_two_extension_packages() -> None:
    data = metadata('name="A" packageVersion="1.0.0"/><ExtensionPackage name="B" packageVersion="1.0.0"')
    assert "2 <ExtensionPackage> elements" in refused(data)


@pytest.mark.parametrize("attributes", ['packageVersion="1.0.0"', 'name="" packageVersion="1.0.0"'])
def test_it_refuses_a_missing_name(attributes: str) -> None:
    assert refused(metadata(attributes)) == "metadata.xml: ExtensionPackage has no name"


@pytest.mark.parametrize("attributes", ['name="P"', 'name="P" packageVersion="  "'])
def test_it_refuses_a_missing_version(attributes: str) -> None:
    assert refused(metadata(attributes)) == "metadata.xml: ExtensionPackage 'P' has no packageVersion"


@pytest.mark.parametrize(
    "name", ["../evil", "a/b", "a\\b", ".hidden", "x.", "a..b", "a" * 129, "has space", "Pâté", "-x", "_x"]
)
def test_it_refuses_a_name_that_is_not_a_safe_folder_name(name: str) -> None:
    reason = refused(metadata(f'name="{name}" packageVersion="1.0.0"'))
    assert reason.startswith(f"metadata.xml: name '{name}' is not a safe folder name")


@pytest.mark.parametrize("version", ["1.x", "1.0-SNAPSHOT", "1.2.3.4.5", "v1.0", "1..0"])
def test_it_refuses_a_version_that_cannot_be_ordered(version: str) -> None:
    reason = refused(metadata(f'name="P" packageVersion="{version}"'))
    assert reason == f"metadata.xml: packageVersion '{version}' cannot be ordered (expected major.minor.patch)"


@pytest.mark.parametrize("depends_on", ["CommonUtils", "A:", ":1.0.0", "A:1.x", "A:1.0.0;B", "../x:1.0.0"])
def test_it_refuses_a_malformed_dependency(depends_on: str) -> None:
    reason = refused(metadata(f'name="P" packageVersion="1.0.0" dependsOn="{depends_on}"'))
    assert reason.startswith("metadata.xml: dependsOn item ")
    assert "is malformed" in reason


def test_it_refuses_a_package_depending_on_itself() -> None:
    reason = refused(metadata('name="P" packageVersion="1.0.0" dependsOn="P:1.0.0"'))
    assert reason == "metadata.xml: package 'P' depends on itself"


def test_it_refuses_an_unreadable_ha_compatible() -> None:
    reason = refused(metadata('name="P" packageVersion="1.0.0" haCompatible="yes"'))
    assert reason == "metadata.xml: haCompatible 'yes' must be true or false"


# --- names ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["FileUtilities", "a", "9lives", "a.b-c_d", "A" * 128, "v1.2"])
def test_it_accepts_safe_folder_names(name: str) -> None:
    assert is_safe_name(name)


@pytest.mark.parametrize("name", ["", ".", "..", "a..b", "x.", "a/b", "a\nb", "A" * 129, "٣", "CommonUtils\n"])
def test_it_rejects_unsafe_folder_names(name: str) -> None:
    assert not is_safe_name(name)
