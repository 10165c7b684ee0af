"""The OpenAPI schema and its docs pages, served without any CDN."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from django.contrib.staticfiles import finders
from rest_framework.test import APIClient

from extadmin.api.serializers import PackageSerializer
from extadmin.documents import package_summary
from extadmin.packaging.policy import POLICY_KEYS
from tests.processes import run_command

pytestmark = pytest.mark.django_db

PATHS = {
    "/api/extensions/": {"get", "post"},
    "/api/extensions/{name}/": {"get", "delete"},
    "/api/extensions/{name}/entities/": {"get"},
    "/api/operations/": {"get"},
    "/api/cluster/": {"get"},
    "/api/cluster/pause/": {"post"},
    "/api/cluster/resume/": {"post"},
    "/api/policy/": {"get"},
}


def test_it_serves_a_schema_describing_every_endpoint(api: APIClient) -> None:
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json() if response["Content-Type"].endswith("json") else yaml.safe_load(response.content)
    assert {p: set(ops) - {"parameters"} for p, ops in schema["paths"].items() if p in PATHS} == PATHS
    post = schema["paths"]["/api/extensions/"]["post"]
    assert "multipart/form-data" in post["requestBody"]["content"]
    assert {"200", "201", "400", "401", "403", "409", "413"} <= set(post["responses"])
    assert "409" in schema["paths"]["/api/extensions/{name}/"]["delete"]["responses"]
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_it_generates_the_schema_without_warnings(tmp_path: Path) -> None:
    code, _, err = run_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"))
    assert code == 0, err


def test_it_serves_the_docs_from_local_static_files(api: APIClient) -> None:
    response = api.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, html
    assert not [s for s in sources if s.startswith(("http:", "https:", "//"))]
    for source in sources:
        if source.startswith("/static/"):
            assert finders.find(source.removeprefix("/static/")), source


def test_it_documents_every_key_of_the_import_policy(api: APIClient) -> None:
    schema = yaml.safe_load(api.get("/api/schema/").content)
    ref = schema["paths"]["/api/policy/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    policy = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert list(policy["properties"]) == list(POLICY_KEYS)
    assert all(p["type"] == "boolean" and p["description"] for p in policy["properties"].values())


def test_it_documents_the_package_fields_the_documents_carry(imported) -> None:  # type: ignore[no-untyped-def]
    assert set(PackageSerializer().fields) == set(package_summary(imported("Doc")))


def test_the_schema_is_built_once_per_process_and_served_the_same_every_time(api: APIClient) -> None:
    from drf_spectacular.generators import SchemaGenerator

    from extadmin.api.schema import SchemaView

    accept = "application/vnd.oai.openapi+json"
    first = api.get("/api/schema/", HTTP_ACCEPT=accept)
    assert SchemaView._built, "the first request keeps the schema it built"
    again = api.get("/api/schema/", HTTP_ACCEPT=accept)
    assert first.status_code == again.status_code == 200 and first.content == again.content
    fresh = SchemaGenerator().get_schema(request=None, public=True)
    assert again.json()["paths"].keys() == fresh["paths"].keys()
    assert yaml.safe_load(api.get("/api/schema/").content)["paths"].keys() == fresh["paths"].keys()  # YAML too
