"""Entity collisions, as the platform refuses them: a package may not declare an entity (type and
name) that another installed package declares, nor two packages imported together the same one.

Through every door (CLI, API, form; each with validate only) for a package, a bundle and several
files; nothing written. An upgrade or re-import keeps its own entities. The lookup is a few batched
queries on the Entity(type, name) index even for 10,000 entities.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from extadmin.collisions import BATCH, entity_collisions_check
from extadmin.models import Entity, ExtensionPackage
from extadmin.operations import Actor
from extadmin.packaging import Refusal, parse_metadata
from extadmin.removal import package_remove
from extadmin.services import package_import_files
from extadmin.storage import NodeStorage
from tests.extadmin.doors import DOORS, LOGIN_TABLES, REFUSED
from tests.packages import metadata_xml
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

BOTH = "Thing 'Shared' is declared by both First.zip (First:1.0.0) and Second.zip (Second:1.0.0)"
DOOR_CASES = [(door, validate) for door in DOORS for validate in (False, True)]
DOOR_IDS = [f"{door}-{'validate' if validate else 'import'}" for door, validate in DOOR_CASES]


def things(*names: str, collection: str = "Things", tag: str = "Thing") -> str:
    return f"<{collection}>" + "".join(f'<{tag} name="{n}"/>' for n in names) + f"</{collection}>"


def declaring(packages: Packages, name: str, entities: str, version: str = "1.0.0") -> Path:
    return packages.make(name, version, metadata=metadata_xml(name, version, entities=entities), filename=f"{name}.zip")


@pytest.fixture
def pumpkit(node_storage: NodeStorage, packages: Packages) -> ExtensionPackage:
    (result,) = import_file(declaring(packages, "PumpKit", things("PumpMonitor", "PumpLog"), "1.2.0"))
    assert result.package is not None
    return result.package


@pytest.mark.parametrize(("door", "validate"), DOOR_CASES, ids=DOOR_IDS)
def test_it_refuses_a_package_declaring_an_entity_another_package_declares(
    door: str, validate: bool, pumpkit: ExtensionPackage, node_storage: NodeStorage, packages: Packages,
    operator: User,
) -> None:
    path = declaring(packages, "Rival", things("RivalOwn", "PumpMonitor"))
    before = world_snapshot([node_storage.root])

    code, said = DOORS[door](path, operator, validate=validate)

    assert (code, said) == (REFUSED[door], "validate: Thing 'PumpMonitor' is already declared by PumpKit:1.2.0")
    assert_world_unchanged(before, [node_storage.root], ignore=LOGIN_TABLES)


@pytest.mark.parametrize(("door", "validate"), DOOR_CASES, ids=DOOR_IDS)
def test_it_refuses_a_bundle_whose_members_declare_the_same_entity_naming_both(
    door: str, validate: bool, node_storage: NodeStorage, packages: Packages, operator: User
) -> None:
    first = declaring(packages, "First", things("Shared"))
    second = declaring(packages, "Second", things("SecondOwn", "Shared"))
    bundle = packages.bundle("Suite", [first, second])
    before = world_snapshot([node_storage.root])

    code, said = DOORS[door](bundle, operator, validate=validate)

    assert (code, said) == (REFUSED[door], f"Second.zip: validate: {BOTH}")
    assert_world_unchanged(before, [node_storage.root], ignore=LOGIN_TABLES)


@pytest.mark.parametrize("validate", [False, True], ids=["import", "validate"])
def test_it_refuses_several_files_declaring_the_same_entity_through_the_api_and_the_form(
    validate: bool, node_storage: NodeStorage, packages: Packages, operator: User
) -> None:
    first, second = declaring(packages, "First", things("Shared")), declaring(packages, "Second", things("Shared"))
    said = f"Second.zip: validate: {BOTH}"
    before = world_snapshot([node_storage.root])

    response = upload(token_client(operator), first, second, validate=validate)
    form = form_refusal(operator, first, second, validate=validate)

    error = response.json()["error"]
    assert (response.status_code, f"{error['file']}: {error['step']}: {error['reason']}") == (400, said)
    assert form == (400, said)
    assert_world_unchanged(before, [node_storage.root], ignore=LOGIN_TABLES)


def test_it_refuses_a_bundle_member_that_collides_with_an_installed_package(
    pumpkit: ExtensionPackage, node_storage: NodeStorage, packages: Packages, operator: User
) -> None:
    bundle = packages.bundle("Suite", [declaring(packages, "Fine", things("FineOwn")),
                                       declaring(packages, "Rival", things("PumpLog"))])
    code, said = DOORS["api"](bundle, operator)
    assert (code, said) == (400, "Rival.zip: validate: Thing 'PumpLog' is already declared by PumpKit:1.2.0")
    assert not ExtensionPackage.objects.filter(name__in=["Fine", "Rival"]).exists()


def test_it_names_how_many_more_collide(pumpkit: ExtensionPackage, packages: Packages, operator: User) -> None:
    code, said = DOORS["cli"](declaring(packages, "Rival", things("PumpLog", "PumpMonitor")), operator)
    assert (code, said) == (1, "validate: Thing 'PumpLog' is already declared by PumpKit:1.2.0 (and 1 more)")


@pytest.mark.parametrize("version", ["1.2.0", "1.3.0"], ids=["reimport", "upgrade"])
def test_it_lets_the_same_package_keep_its_own_entities(
    version: str, pumpkit: ExtensionPackage, packages: Packages
) -> None:
    (result,) = import_file(declaring(packages, "PumpKit", things("PumpMonitor", "PumpLog", "PumpNew"), version))
    assert result.plan.kind == ("reimport" if version == "1.2.0" else "upgrade")
    assert sorted(Entity.objects.filter(package__name="PumpKit").values_list("name", flat=True)) == [
        "PumpLog", "PumpMonitor", "PumpNew",
    ]


def test_it_lets_a_bundle_move_an_entity_from_an_upgraded_member_to_another(
    pumpkit: ExtensionPackage, packages: Packages
) -> None:
    """The upgrade gives PumpMonitor up in the same all-or-nothing import that gives it to Monitor."""
    upgrade = declaring(packages, "PumpKit", things("PumpLog"), "1.3.0")
    taker = declaring(packages, "Monitor", things("PumpMonitor"))
    package_import_files(files=[(packages.bundle("Move", [taker, upgrade]), None)], actor=Actor(via="cli"))
    owners = dict(Entity.objects.values_list("name", "package__name"))
    assert owners == {"PumpLog": "PumpKit", "PumpMonitor": "Monitor"}


def test_it_sees_a_different_type_with_the_same_name_as_no_collision(
    pumpkit: ExtensionPackage, packages: Packages
) -> None:
    shape = things("PumpMonitor", collection="ThingShapes", tag="ThingShape")
    (result,) = import_file(declaring(packages, "Shapes", shape))
    assert result.package is not None


def test_it_frees_an_entity_when_its_package_is_removed(pumpkit: ExtensionPackage, packages: Packages) -> None:
    package_remove(name="PumpKit")
    (result,) = import_file(declaring(packages, "Rival", things("PumpMonitor")))
    assert result.package is not None


def test_it_looks_up_10000_entities_in_a_few_batched_queries(node_storage: NodeStorage, packages: Packages) -> None:
    names = [f"T{i:05d}" for i in range(10_000)]
    import_file(declaring(packages, "Big", things(*names)))
    rival_entities = things(*[f"R{i:05d}" for i in range(9_999)], names[-1])
    rival = parse_metadata(metadata_xml("Rival", entities=rival_entities).encode())

    with CaptureQueriesContext(connection) as queries, pytest.raises(Refusal) as refused:
        entity_collisions_check(meta=rival)

    assert str(refused.value) == "validate: Thing 'T09999' is already declared by Big:1.0.0"
    assert len(queries) <= -(-10_000 // BATCH)


def test_it_has_an_index_on_entity_type_and_name() -> None:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Entity._meta.db_table)
    assert any(c["index"] and c["columns"] == ["type", "name"] for c in constraints.values())
