"""Dependencies: ``dependsOn`` with ``;`` or ``,``; missing or too-old ones refused naming them;
a package others depend on cannot be removed while they remain. Service, CLI and API."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from extadmin.models import ExtensionPackage
from extadmin.packaging import Conflict, Refusal
from extadmin.removal import package_remove
from extadmin.storage import NodeStorage
from tests.processes import run_command
from tests.semantics.support import Packages, import_file, upload, world_snapshot

pytestmark = pytest.mark.django_db

Imported = Callable[..., ExtensionPackage]


@pytest.mark.parametrize(
    "depends_on", ["Base:1.0.0;Other:2.0.0", "Base:1.0.0,Other:2.0.0", " Base:1.0.0 , Other:2.0 ;"]
)
def test_it_reads_dependencies_separated_by_semicolons_or_commas(
    imported: Imported, packages: Packages, depends_on: str
) -> None:
    imported("Base", "1.0.0")
    imported("Other", "2.0.0")
    (result,) = import_file(packages.make("Dependent", depends_on=depends_on))
    assert result.package is not None and result.package.depends_on == depends_on


def test_it_refuses_a_missing_dependency_naming_it(
    node_storage: NodeStorage, packages: Packages, imported: Imported
) -> None:
    imported("Base", "1.0.0")
    before = world_snapshot([node_storage.root])
    with pytest.raises(Refusal) as refused:
        import_file(packages.make("Dependent", depends_on="Base:1.0.0,Missing:1.2.0"))
    assert refused.value.as_dict() == {
        "step": "validate",
        "reason": "Dependent depends on Missing:1.2.0, which is not installed",
    }
    assert world_snapshot([node_storage.root]).storage == before.storage
    assert not ExtensionPackage.objects.filter(name="Dependent").exists()


def test_it_refuses_a_dependency_below_the_required_version_naming_both(imported: Imported, packages: Packages) -> None:
    imported("Base", "1.0.0")
    with pytest.raises(Refusal) as refused:
        import_file(packages.make("Dependent", depends_on="Base:1.2.0"))
    assert refused.value.reason == "Dependent depends on Base:1.2.0, but Base:1.0.0 is installed"


def test_it_accepts_a_dependency_above_the_required_version(imported: Imported, packages: Packages) -> None:
    imported("Base", "1.3.0")
    (result,) = import_file(packages.make("Dependent", depends_on="Base:1.2.0"))
    assert result.package is not None


def test_it_refuses_missing_and_old_dependencies_through_the_cli(imported: Imported, packages: Packages) -> None:
    imported("Base", "1.0.0")
    code, _, err = run_command("import_extension", str(packages.make("Dep1", depends_on="Gone:1.0.0")))
    assert code == 1
    assert err.strip() == "error: validate: Dep1 depends on Gone:1.0.0, which is not installed"
    code, _, err = run_command("import_extension", str(packages.make("Dep2", depends_on="Base:2.0.0")))
    assert code == 1
    assert err.strip() == "error: validate: Dep2 depends on Base:2.0.0, but Base:1.0.0 is installed"


def test_it_refuses_missing_and_old_dependencies_through_the_api(
    api: APIClient, imported: Imported, packages: Packages
) -> None:
    imported("Base", "1.0.0")
    response = upload(api, packages.make("Dep1", depends_on="Gone:1.0.0"))
    assert response.status_code == 400
    assert response.json() == {
        "error": {"step": "validate", "reason": "Dep1 depends on Gone:1.0.0, which is not installed"}
    }
    response = upload(api, packages.make("Dep2", depends_on="Base:2.0.0"))
    assert response.status_code == 400
    assert "Base:1.0.0 is installed" in response.json()["error"]["reason"]


# --- removal of a package others depend on --------------------------------------------------------


def test_it_refuses_removing_a_package_others_depend_on_listing_them(
    node_storage: NodeStorage, imported: Imported
) -> None:
    imported("Base", "1.0.0")
    imported("Left", "1.0.0", depends_on="Base:1.0.0")
    imported("Other", "1.0.0")
    imported("Right", "2.0.0", depends_on="Other:1.0.0;Base:1.0.0")
    before = world_snapshot([node_storage.root])
    with pytest.raises(Conflict) as refused:
        package_remove(name="Base")
    assert refused.value.reason == "Base cannot be removed while these packages depend on it: Left:1.0.0, Right:2.0.0"
    assert world_snapshot([node_storage.root]).storage == before.storage
    assert ExtensionPackage.objects.filter(name="Base").exists()


def test_it_removes_a_dependency_once_its_dependents_are_gone(node_storage: NodeStorage, imported: Imported) -> None:
    imported("Base", "1.0.0")
    imported("Dependent", "1.0.0", depends_on="Base:1.0.0")
    package_remove(name="Dependent")
    package_remove(name="Base")
    assert not ExtensionPackage.objects.exists()
    assert not node_storage.package_dir("Base").exists()


def test_it_does_not_mistake_a_name_prefix_for_a_dependency(imported: Imported) -> None:
    imported("Base", "1.0.0")
    imported("BaseExtras", "1.0.0")
    imported("UsesExtras", "1.0.0", depends_on="BaseExtras:1.0.0")
    package_remove(name="Base")
    assert not ExtensionPackage.objects.filter(name="Base").exists()


def test_it_refuses_removing_a_depended_on_package_through_the_cli(imported: Imported) -> None:
    imported("Base", "1.0.0")
    imported("Dependent", "1.0.0", depends_on="Base:1.0.0")
    code, _, err = run_command("delete_extension", "Base")
    assert code == 1
    assert err.strip() == "error: validate: Base cannot be removed while these packages depend on it: Dependent:1.0.0"


def test_it_refuses_removing_a_depended_on_package_through_the_api_with_409(
    api: APIClient, imported: Imported
) -> None:
    imported("Base", "1.0.0")
    imported("Dependent", "1.0.0", depends_on="Base:1.0.0")
    response = api.delete("/api/extensions/Base/")
    assert response.status_code == 409
    assert response.json() == {
        "error": {
            "step": "validate",
            "reason": "Base cannot be removed while these packages depend on it: Dependent:1.0.0",
            "dependents": ["Dependent:1.0.0"],
        }
    }
    assert ExtensionPackage.objects.filter(name="Base").exists()
