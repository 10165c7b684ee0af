"""The import policy (``EXTADMIN_IMPORT_POLICY``, ThingWorx's ExtensionPackageImportPolicy) through
every door: the CLI (``--validate-only`` too), ``POST /api/extensions/`` (``?validate=true`` too)
and the upload form (its validate button too), for a package, a bundle and several files.

A package that needs a forbidden kind is refused at validate naming the key and what needs it,
with nothing written; the default (all true) imports every sample package; the policy in force is
shown on the upload page and at ``GET /api/policy/``; a policy that cannot be enforced stops the start.
"""
from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from extadmin.models import ExtensionPackage
from extadmin.packaging.policy import DEFAULT_POLICY
from extadmin.storage import NodeStorage
from tests.extadmin.doors import DOORS, LOGIN_TABLES, REFUSED
from tests.packages import FIXTURES, build_fixture_package, build_package
from tests.processes import child_env, manage, run_command
from tests.semantics.support import (
    Packages,
    assert_world_unchanged,
    import_file,
    token_client,
    upload,
    world_snapshot,
)
from tests.semantics.test_refusal_names import form_refusal

pytestmark = pytest.mark.django_db

JAR_REFUSED = "validate: the import policy forbids JAR resources (allowJarResources is false)"
IMPORTS_REFUSED = "validate: the import policy forbids imports (importEnabled is false)"
DOOR_CASES = [(door, validate) for door in DOORS for validate in (False, True)]
DOOR_IDS = [f"{door}-{'validate' if validate else 'import'}" for door, validate in DOOR_CASES]


@pytest.fixture
def policy(settings):  # type: ignore[no-untyped-def]
    """``policy(allowJarResources=False, ...)``: the policy in force, the other keys at their default."""

    def set_policy(**values: bool) -> None:
        settings.EXTADMIN_IMPORT_POLICY = {**DEFAULT_POLICY, **values}

    return set_policy


def widget_files(name: str) -> dict[str, bytes]:
    return {f"ui/{name}/{name.lower()}.js": b"/* widget */", f"Entities/Widgets/Widgets_{name}.xml": b"<Entities/>"}


@pytest.mark.parametrize(("door", "validate"), DOOR_CASES, ids=DOOR_IDS)
def test_it_refuses_a_jar_under_allow_jar_resources_false(
    door: str, validate: bool, node_storage: NodeStorage, packages: Packages, operator: User, policy
) -> None:  # type: ignore[no-untyped-def]
    policy(allowJarResources=False)
    path = packages.make("Pump")  # holds lib/pump.jar
    before = world_snapshot([node_storage.root])

    code, said = DOORS[door](path, operator, validate=validate)

    assert (code, said) == (REFUSED[door], f"{JAR_REFUSED}: entry 'lib/pump.jar'")
    assert_world_unchanged(before, [node_storage.root], ignore=LOGIN_TABLES)


@pytest.mark.parametrize(("door", "validate"), DOOR_CASES, ids=DOOR_IDS)
def test_it_refuses_every_import_when_imports_are_disabled(
    door: str, validate: bool, node_storage: NodeStorage, packages: Packages, operator: User, policy
) -> None:  # type: ignore[no-untyped-def]
    policy(importEnabled=False)
    path = packages.make("Plain", files=widget_files("Plain"))
    before = world_snapshot([node_storage.root])

    code, said = DOORS[door](path, operator, validate=validate)

    assert (code, said) == (REFUSED[door], IMPORTS_REFUSED)
    assert_world_unchanged(before, [node_storage.root], ignore=LOGIN_TABLES)


@pytest.mark.parametrize(("door", "validate"), DOOR_CASES, ids=DOOR_IDS)
def test_it_refuses_a_bundle_naming_the_member_that_needs_a_forbidden_kind(
    door: str, validate: bool, node_storage: NodeStorage, packages: Packages, operator: User, policy
) -> None:  # type: ignore[no-untyped-def]
    policy(allowJarResources=False)
    fine = packages.make("Fine", files=widget_files("Fine"), filename="Fine.zip")
    bundle = packages.bundle("Suite", [fine, packages.make("Jarred", filename="Jarred.zip")])
    before = world_snapshot([node_storage.root])

    code, said = DOORS[door](bundle, operator, validate=validate)

    assert (code, said) == (REFUSED[door], f"Jarred.zip: {JAR_REFUSED}: entry 'lib/jarred.jar'")
    assert_world_unchanged(before, [node_storage.root], ignore=LOGIN_TABLES)


@pytest.mark.parametrize("validate", [False, True], ids=["import", "validate"])
def test_it_refuses_one_of_several_files_through_the_api_and_the_form(
    validate: bool, node_storage: NodeStorage, packages: Packages, operator: User, policy
) -> None:  # type: ignore[no-untyped-def]
    policy(allowJavascriptResources=False)
    fine = packages.make("Fine", files={"lib/fine.jar": b"jar"}, filename="Fine.zip")
    scripted = packages.make("Scripted", files=widget_files("Scripted"), filename="Scripted.zip")
    said = (
        "Scripted.zip: validate: the import policy forbids JavaScript resources (allowJavascriptResources is false): "
        "entry 'ui/Scripted/scripted.js'"
    )
    before = world_snapshot([node_storage.root])

    response = upload(token_client(operator), fine, scripted, validate=validate)
    form = form_refusal(operator, fine, scripted, validate=validate)

    error = response.json()["error"]
    assert (response.status_code, f"{error['file']}: {error['step']}: {error['reason']}") == (400, said)
    assert form == (400, said)
    assert_world_unchanged(before, [node_storage.root], ignore=LOGIN_TABLES)


@pytest.mark.parametrize(
    ("key", "fixture", "said"),
    [
        ("allowJarResources", "CommonUtils.xml",
         'metadata.xml declares FileResource type="JAR" file="commonutils.jar"'),
        ("allowCSSResources", "WidgetOnly.xml",
         'metadata.xml declares FileResource type="CSS" file="statuslamp.ide.css" (and 1 more)'),
        ("allowEntities", "DataExporterExtension.xml",
         "metadata.xml declares Resource 'InfotableExporterFunctions' (and 2 more)"),
    ],
)
def test_it_refuses_what_metadata_declares_even_when_the_zip_lacks_it(
    key: str, fixture: str, said: str, node_storage: NodeStorage, packages: Packages, policy
) -> None:  # type: ignore[no-untyped-def]
    policy(**{key: False})
    path = build_package(packages.folder, "Sample", metadata=(FIXTURES / fixture).read_text(), files={})
    code, _, err = run_command("import_extension", str(path), "--validate-only")
    assert code == 1
    assert err.strip().endswith(f"({key} is false): {said}"), err
    assert not ExtensionPackage.objects.exists()


def test_it_imports_every_sample_package_under_the_default_policy(
    node_storage: NodeStorage, packages: Packages
) -> None:
    import_file(build_fixture_package(packages.folder, "CommonUtils.xml"))
    import_file(packages.make("JsonTools", "0.9.1"))  # completes MqttBridge's dependencies
    for sample in ["DataExporterExtension.xml", "JavaWithDependencies.xml", "WidgetOnly.xml"]:
        import_file(build_fixture_package(packages.folder, sample))
    assert ExtensionPackage.objects.count() == 5


def test_it_imports_what_needs_no_forbidden_kind(node_storage: NodeStorage, packages: Packages, policy) -> None:  # type: ignore[no-untyped-def]
    policy(allowJarResources=False, allowJSONResources=False, allowWebAppResources=False,
           allowExtensibleEntities=False)
    (result,) = import_file(packages.make("Lamp", files=widget_files("Lamp")))
    assert result.package is not None and result.package.name == "Lamp"


# --- where the operator sees it --------------------------------------------------------------------


def test_it_serves_the_policy_in_force_to_any_signed_in_user(reader: User, policy) -> None:  # type: ignore[no-untyped-def]
    policy(allowJarResources=False, allowEntities=False)

    response = token_client(reader).get("/api/policy/")

    assert response.status_code == 200
    assert response.json() == {**DEFAULT_POLICY, "allowJarResources": False, "allowEntities": False}
    assert list(response.json()) == list(DEFAULT_POLICY)


def test_it_serves_the_policy_to_no_one_anonymous() -> None:
    response = APIClient().get("/api/policy/")
    assert response.status_code == 401
    assert response.json()["error"]["step"] == "authenticate"


def test_it_shows_the_policy_on_the_upload_page(operator: User, policy) -> None:  # type: ignore[no-untyped-def]
    policy(allowJarResources=False)
    client = Client()
    client.force_login(operator)

    page = client.get("/extensions/upload/").content.decode()

    assert 'id="import-policy"' in page
    assert '<tr data-key="allowJarResources" data-allowed="false">' in page
    assert '<tr data-key="allowCSSResources" data-allowed="true">' in page
    assert 'href="/api/policy/"' in page


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ('{"allowJarResources": no}', "EXTADMIN_IMPORT_POLICY is not valid JSON"),
        ('{"allowJars": false}', "EXTADMIN_IMPORT_POLICY has unknown keys allowJars"),
        ('{"allowJarResources": "false"}', "EXTADMIN_IMPORT_POLICY: allowJarResources must be true or false"),
    ],
)
def test_it_refuses_to_start_with_a_policy_it_cannot_enforce(value: str, said: str) -> None:
    started = manage("check", env=child_env(EXTADMIN_IMPORT_POLICY=value))
    assert started.returncode != 0
    assert f"django.core.exceptions.ImproperlyConfigured: {said}" in started.stderr


def test_it_starts_with_a_policy_it_can_enforce() -> None:
    started = manage("check", env=child_env(EXTADMIN_IMPORT_POLICY='{"allowJarResources": false}'))
    assert started.returncode == 0, started.stderr
