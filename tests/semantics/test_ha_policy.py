"""The HA policy: packages not marked ``haCompatible="true"`` import with a warning (warn, the
default) or are refused (deny). Service, CLI, API and form; validate only says "would be imported"."""
from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from extadmin.models import ExtensionPackage, Operation
from extadmin.packaging import Refusal
from extadmin.storage import NodeStorage
from tests.extadmin.doors import DOORS, LOGIN_TABLES
from tests.processes import run_command
from tests.semantics.support import Packages, assert_world_unchanged, import_file, upload, world_snapshot

pytestmark = pytest.mark.django_db

NOT_SAID = "Quiet does not say it is safe for clusters (haCompatible)"
MARKED_NOT = "Single is marked as not safe for clusters (haCompatible)"


@pytest.fixture
def deny(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXTADMIN_HA_COMPATIBILITY = "deny"


def test_it_warns_by_default_and_imports(node_storage: NodeStorage, packages: Packages) -> None:
    (quiet,) = import_file(packages.make("Quiet", ha_compatible=None))
    (single,) = import_file(packages.make("Single", ha_compatible="false"))
    assert quiet.plan.warnings == [f"{NOT_SAID}; it was imported because the HA policy is warn"]
    assert single.plan.warnings == [f"{MARKED_NOT}; it was imported because the HA policy is warn"]
    assert ExtensionPackage.objects.get(name="Single").ha_compatible is False
    # The warning stays in the audit trail.
    assert MARKED_NOT in Operation.objects.get(package_name="Single").warnings


@pytest.mark.parametrize("value", ["true", "TRUE", "True"])
def test_it_imports_packages_marked_compatible_in_any_case_without_warning(
    node_storage: NodeStorage, packages: Packages, deny: None, value: str
) -> None:
    (result,) = import_file(packages.make("Ha", ha_compatible=value))
    assert result.plan.warnings == []


@pytest.mark.parametrize(
    ("ha", "said"), [(None, NOT_SAID.replace("Quiet", "Pkg")), ("false", MARKED_NOT.replace("Single", "Pkg"))]
)
def test_it_refuses_under_deny(
    node_storage: NodeStorage, packages: Packages, deny: None, ha: str | None, said: str
) -> None:
    with pytest.raises(Refusal) as refused:
        import_file(packages.make("Pkg", ha_compatible=ha))
    assert refused.value.as_dict() == {"step": "validate", "reason": f"{said} and the HA policy is deny"}
    assert not ExtensionPackage.objects.exists()
    assert not node_storage.package_dir("Pkg").exists()


def test_it_warns_and_refuses_through_the_cli(node_storage: NodeStorage, packages: Packages, settings) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_command("import_extension", str(packages.make("Single", ha_compatible="false")))
    assert code == 0
    assert f"warning: {MARKED_NOT}" in out
    code, out, _ = run_command("import_extension", str(packages.make("Quiet", ha_compatible=None)), "--json")
    assert json.loads(out)["warnings"] == [f"{NOT_SAID}; it was imported because the HA policy is warn"]
    settings.EXTADMIN_HA_COMPATIBILITY = "deny"
    code, _, err = run_command("import_extension", str(packages.make("Other", ha_compatible="false")))
    assert code == 1 and err.strip().endswith("and the HA policy is deny")


def test_it_warns_and_refuses_through_the_api(api: APIClient, packages: Packages, settings) -> None:  # type: ignore[no-untyped-def]
    response = upload(api, packages.make("Single", ha_compatible="false"))
    assert response.status_code == 201
    assert response.json()["warnings"] == [f"{MARKED_NOT}; it was imported because the HA policy is warn"]
    settings.EXTADMIN_HA_COMPATIBILITY = "deny"
    response = upload(api, packages.make("Other", ha_compatible="false"))
    assert response.status_code == 400
    assert response.json()["error"]["reason"].endswith("and the HA policy is deny")
    # A bundle with one such member is refused whole.
    response = upload(api, packages.bundle("b", [packages.make("Fine"), packages.make("Other", ha_compatible=None)]))
    assert response.status_code == 400
    assert not ExtensionPackage.objects.filter(name="Fine").exists()


@pytest.mark.parametrize("door", ["cli", "api", "form"])
def test_it_says_would_be_imported_when_only_validating(
    door: str, node_storage: NodeStorage, packages: Packages, operator: User
) -> None:
    """Validate only imports nothing: its warning must not say the package was imported."""
    path = packages.make("Single", ha_compatible="false")
    before = world_snapshot([node_storage.root])

    code, said = DOORS[door](path, operator, validate=True)

    assert code == 0, said
    assert f"{MARKED_NOT}; it would be imported because the HA policy is warn" in said
    assert "was imported" not in said
    if door == "cli":
        assert said.startswith("valid Single 1.0.0 sha256:")
        assert f"warning: {MARKED_NOT}; it would be imported" in said
    assert_world_unchanged(before, [node_storage.root], ignore=LOGIN_TABLES)
