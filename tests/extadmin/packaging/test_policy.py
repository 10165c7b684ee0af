"""The import policy (ThingWorx's ExtensionPackageImportPolicy), on its own: parsing the setting,
and deciding from what metadata.xml declares and what the zip holds."""
from __future__ import annotations

import pytest
from zipcraft import fixture_metadata

from extadmin.packaging import Refusal, parse_metadata
from extadmin.packaging.metadata import FileResourceDecl
from extadmin.packaging.policy import (
    DEFAULT_POLICY,
    POLICY_KEYS,
    PolicyError,
    check_import_policy,
    parse_import_policy,
)

pytestmark = pytest.mark.dbless  # no database, no broker: .ci/run runs it once

THINGWORX_KEYS = [
    "importEnabled", "allowJarResources", "allowJavascriptResources", "allowCSSResources",
    "allowJSONResources", "allowWebAppResources", "allowEntities", "allowExtensibleEntities",
]
BARE = (
    b'<Entities><ExtensionPackages><ExtensionPackage name="P" packageVersion="1.0.0"/></ExtensionPackages>'
    b"</Entities>"
)


def forbidding(*keys: str) -> dict[str, bool]:
    return {**DEFAULT_POLICY, **dict.fromkeys(keys, False)}


def refusal(policy: dict[str, bool], metadata: bytes = BARE, entries: tuple[str, ...] = ()) -> str:
    with pytest.raises(Refusal) as refused:
        check_import_policy(policy, metadata=parse_metadata(metadata), entries=entries)
    assert refused.value.step == "validate"
    return refused.value.reason


# --- the setting -----------------------------------------------------------------------------------


def test_it_has_the_platforms_keys_all_true_by_default() -> None:
    assert list(POLICY_KEYS) == THINGWORX_KEYS
    assert parse_import_policy(None) == dict.fromkeys(THINGWORX_KEYS, True)
    assert parse_import_policy("  ") == dict.fromkeys(THINGWORX_KEYS, True)


def test_it_overrides_only_the_keys_given() -> None:
    policy = parse_import_policy('{"allowJarResources": false, "importEnabled": true}')
    assert policy == {**dict.fromkeys(THINGWORX_KEYS, True), "allowJarResources": False}


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("{allowJarResources: false}", "is not valid JSON"),
        ('["allowJarResources"]', "must be a JSON object"),
        ("false", "must be a JSON object"),
        ('{"allowJars": false}', "unknown keys allowJars; the keys are importEnabled, allowJarResources"),
        ('{"AllowJarResources": false}', "unknown keys AllowJarResources"),
        ('{"allowJarResources": "false"}', "allowJarResources must be true or false"),
        ('{"allowJarResources": 0}', "allowJarResources must be true or false"),
        ('{"allowEntities": null}', "allowEntities must be true or false"),
    ],
)
def test_it_refuses_a_policy_it_cannot_enforce(text: str, said: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_import_policy(text)
    assert said in str(refused.value)
    assert str(refused.value).startswith("EXTADMIN_IMPORT_POLICY")


# --- what metadata.xml declares --------------------------------------------------------------------


def test_it_reads_every_file_resource_wherever_it_is_nested() -> None:
    meta = parse_metadata(fixture_metadata("DataExporterExtension"))
    assert meta.resources == (
        FileResourceDecl("CSS", "dataexport.ide.js"),
        FileResourceDecl("JS", "dataexport.ide.js"),
        FileResourceDecl("JS", "dataexport.runtime.js"),
        FileResourceDecl("CSS", "dataexport.runtime.css"),
    )
    jars = parse_metadata(fixture_metadata("JavaWithDependencies")).resources
    assert [r.file for r in jars if r.type == "JAR"] == ["mqttbridge.jar", "paho-client-1.2.5.jar"]


def test_it_refuses_a_declared_jar_naming_the_key_and_the_declaration() -> None:
    reason = refusal(forbidding("allowJarResources"), fixture_metadata("JavaWithDependencies"))
    assert reason == (
        'the import policy forbids JAR resources (allowJarResources is false): metadata.xml declares '
        'FileResource type="JAR" file="mqttbridge.jar" (and 1 more)'
    )


@pytest.mark.parametrize(
    ("key", "what", "first"),
    [
        ("allowJavascriptResources", "JavaScript resources", 'FileResource type="JS" file="statuslamp.ide.js"'),
        ("allowCSSResources", "CSS resources", 'FileResource type="CSS" file="statuslamp.ide.css"'),
        ("allowEntities", "entities", "Widget 'statuslamp'"),
    ],
)
def test_it_refuses_each_declared_kind(key: str, what: str, first: str) -> None:
    reason = refusal(forbidding(key), fixture_metadata("WidgetOnly"))
    assert reason.startswith(f"the import policy forbids {what} ({key} is false): metadata.xml declares {first}")


def test_it_refuses_declared_json_and_web_app_resources() -> None:
    body = (
        '<Widgets><Widget name="w"><UIResources><FileResource type="json" file="conf.json"/>'
        '<FileResource type="WebApp" file="app.war"/></UIResources></Widget></Widgets>'
    )
    meta = BARE.replace(b"</Entities>", body.encode() + b"</Entities>")
    assert 'type="json" file="conf.json"' in refusal(forbidding("allowJSONResources"), meta)
    assert 'type="WebApp" file="app.war"' in refusal(forbidding("allowWebAppResources"), meta)


def test_it_refuses_extensible_entities_only_under_their_own_key() -> None:
    body = (
        '<ThingTemplates><ThingTemplate name="Base" aspect.isExtensible="TRUE"/></ThingTemplates>'
        '<ThingShapes><ThingShape name="Fixed" aspect.isExtensible="false"/></ThingShapes>'
    )
    meta = BARE.replace(b"</Entities>", body.encode() + b"</Entities>")
    assert parse_metadata(meta).entities[0].extensible
    assert refusal(forbidding("allowExtensibleEntities"), meta) == (
        "the import policy forbids extensible entities (allowExtensibleEntities is false): "
        'metadata.xml declares ThingTemplate \'Base\' with aspect.isExtensible="true"'
    )
    fixed = BARE.replace(b"</Entities>", body.split("</ThingTemplates>")[1].encode() + b"</Entities>")
    check_import_policy(forbidding("allowExtensibleEntities"), metadata=parse_metadata(fixed), entries=())


# --- what the zip holds ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "entry"),
    [
        ("allowJarResources", "lib/common/evil.jar"),
        ("allowJarResources", "somewhere/else/EVIL.JAR"),
        ("allowJavascriptResources", "ui/w/w.runtime.js"),
        ("allowJavascriptResources", "ui/w/module.mjs"),
        ("allowCSSResources", "ui/w/w.css"),
        ("allowJSONResources", "config/settings.json"),
        ("allowWebAppResources", "webapps/console/app.bin"),
        ("allowWebAppResources", "ui/app/WEB-INF/web.xml"),
        ("allowWebAppResources", "console.war"),
        ("allowEntities", "Entities/Things/Things_X.xml"),
    ],
)
def test_it_refuses_an_undeclared_entry_of_a_forbidden_kind(key: str, entry: str) -> None:
    reason = refusal(forbidding(key), entries=("metadata.xml", entry))
    assert reason.endswith(f"({key} is false): entry '{entry}'"), reason


def test_it_sees_files_merely_named_like_web_app_folders_as_no_web_app() -> None:
    entries = ("webapps", "lib/webapps.txt", "ui/w/web-inf.txt")
    check_import_policy(forbidding("allowWebAppResources"), metadata=parse_metadata(BARE), entries=entries)


def test_it_finds_a_web_app_by_its_index_page() -> None:
    reason = refusal(forbidding("allowWebAppResources"), entries=("ui/Dashboard/index.html", "ui/Dashboard/a.png"))
    assert reason.endswith("(allowWebAppResources is false): folder 'ui/Dashboard/' (an index.html)")


def test_it_counts_a_web_apps_scripts_as_javascript_too() -> None:
    """No key can be passed around through another: a web app's .js needs allowJavascriptResources."""
    entries = ("ui/Dashboard/index.html", "ui/Dashboard/app.js")
    check_import_policy(forbidding("allowJarResources"), metadata=parse_metadata(BARE), entries=entries)
    assert "allowJavascriptResources is false" in refusal(forbidding("allowJavascriptResources"), entries=entries)


def test_it_checks_the_import_switch_first() -> None:
    reason = refusal(forbidding("importEnabled", "allowJarResources"), entries=("lib/a.jar",))
    assert reason == "the import policy forbids imports (importEnabled is false)"


def test_it_allows_everything_by_default() -> None:
    entries = ("lib/a.jar", "ui/w/w.js", "ui/w/w.css", "x.json", "app.war", "Entities/T.xml", "ui/a/index.html")
    check_import_policy(DEFAULT_POLICY, metadata=parse_metadata(fixture_metadata("DataExporterExtension")),
                        entries=entries)


def test_it_shows_untrusted_names_escaped() -> None:
    reason = refusal(forbidding("allowJarResources"), entries=("lib/\x1b[31mred.jar",))
    assert "\x1b" not in reason and "\\x1b[31mred.jar" in reason
