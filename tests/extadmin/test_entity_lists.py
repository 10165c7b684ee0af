"""Entity lists are paginated wherever they are shown: the Django admin, the API, the console.

A package may declare up to EXTADMIN_MAX_ENTITIES (10,000 by default) entities; no page or
document lists them all at once.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.contrib.auth.models import User
from django.test import Client

from extadmin.models import ExtensionPackage
from extadmin.storage import NodeStorage
from tests.extadmin.conftest import import_path
from tests.extadmin.test_limits import entity_package
from tests.semantics.support import make_user, token_client

pytestmark = pytest.mark.django_db
COUNT = 250


@pytest.fixture
def crowded(node_storage: NodeStorage, pkgdir: Path) -> ExtensionPackage:
    import_path(entity_package(pkgdir, "Other", 3))
    (result,) = import_path(entity_package(pkgdir, "Crowded", COUNT))
    assert result.package is not None
    return result.package


def thing(i: int) -> str:
    return f"CrowdedThing{i:06d}"


@pytest.fixture
def superuser() -> User:
    return User.objects.create_superuser("root", "root@example.com", None)


def test_it_links_the_admin_change_page_to_the_paginated_entity_list(crowded: ExtensionPackage, superuser: User):
    client = Client()
    client.force_login(superuser)

    page = client.get(f"/admin/extadmin/extensionpackage/{crowded.pk}/change/").content.decode()

    assert thing(0) not in page and thing(COUNT - 1) not in page
    link = f"/admin/extadmin/entity/?package__id__exact={crowded.pk}"
    assert f'<a href="{link}">{COUNT} entities</a>' in page
    listed = client.get(link)
    assert listed.status_code == 200
    text = listed.content.decode()
    assert f"{COUNT} entities" in text and thing(0) in text
    assert thing(COUNT - 1) not in text and "OtherThing" not in text  # 100 a page, this package only
    assert thing(COUNT - 1) in client.get(link + "&p=3").content.decode()


def test_it_gives_the_entity_count_and_the_first_page_in_the_api_document(crowded: ExtensionPackage) -> None:
    api = token_client(make_user("reader"))

    doc = api.get("/api/extensions/Crowded/").json()

    assert doc["entity_count"] == COUNT
    assert doc["entities"] == [{"type": "Thing", "name": thing(i)} for i in range(100)]
    assert doc["entities_next"] == "http://testserver/api/extensions/Crowded/entities/?page=2"


def test_it_pages_through_a_package_s_entities_in_the_api(crowded: ExtensionPackage) -> None:
    api = token_client(make_user("reader"))

    last = api.get("/api/extensions/Crowded/entities/?page=3").json()

    assert last["count"] == COUNT and last["next"] is None
    assert last["previous"] == "http://testserver/api/extensions/Crowded/entities/?page=2"
    assert last["results"] == [{"type": "Thing", "name": thing(i)} for i in range(200, COUNT)]
    assert api.get("/api/extensions/Crowded/entities/").json()["results"][0] == {"type": "Thing", "name": thing(0)}
    beyond = api.get("/api/extensions/Crowded/entities/?page=4")
    assert beyond.status_code == 404 and set(beyond.json()["error"]) == {"step", "reason"}
    missing = api.get("/api/extensions/Nothing/entities/")
    assert missing.status_code == 404 and missing.json()["error"]["step"] == "lookup"
    assert token_client(None).get("/api/extensions/Crowded/entities/").status_code == 401


def test_it_documents_the_entity_pages_in_the_schema(crowded: ExtensionPackage) -> None:
    api = token_client(make_user("reader"))
    schema = yaml.safe_load(api.get("/api/schema/").content)
    listing = schema["paths"]["/api/extensions/{name}/entities/"]["get"]
    assert "page" in {p["name"] for p in listing["parameters"]}
    page = listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert {"count", "next", "previous", "results"} <= set(schema["components"]["schemas"][page]["properties"])
    detail = schema["components"]["schemas"]["PackageDetail"]["properties"]
    assert {"entity_count", "entities", "entities_next"} <= set(detail)


def test_it_pages_the_console_package_page_s_entities(crowded: ExtensionPackage) -> None:
    client = Client()
    client.force_login(make_user("viewer"))

    first = client.get("/extensions/Crowded/").content.decode()

    assert f"Entities <span class=\"muted\">({COUNT})</span>" in first
    assert thing(99) in first and thing(100) not in first
    assert 'href="?entities=2"' in first
    last = client.get("/extensions/Crowded/?entities=3").content.decode()
    assert thing(200) in last and thing(199) not in last and 'href="?entities=2"' in last
    for odd in ("abc", "0", "999", "-1", "1" * 40):
        assert client.get(f"/extensions/Crowded/?entities={odd}").status_code == 200, odd
