"""The audit trail: who imported, upgraded, removed, paused or resumed what, when, from which
address, through which door, with what outcome — read back through the API."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from extadmin.models import ExtensionPackage, Operation
from tests.processes import run_command
from tests.semantics.support import Packages, upload

pytestmark = pytest.mark.django_db


def test_it_records_every_kind_of_operation_with_who_where_and_outcome(
    api: APIClient, operator: User, packages: Packages
) -> None:
    assert upload(api, packages.make("Audited", "1.0.0")).status_code == 201
    assert upload(api, packages.make("Audited", "1.1.0")).status_code == 201
    assert upload(api, packages.make("Audited", "1.0.0", filename="down.zip")).status_code == 409
    admin = User.objects.create_superuser("root", password=None)
    api.force_authenticate(admin)
    assert api.post("/api/cluster/pause/", REMOTE_ADDR="192.0.2.10").status_code == 200
    assert api.post("/api/cluster/resume/").status_code == 200
    api.force_authenticate(operator)
    assert api.delete("/api/extensions/Audited/").status_code == 200
    ops = list(Operation.objects.order_by("id"))
    assert [(o.kind, o.package_name, o.username, o.via, o.outcome) for o in ops] == [
        ("import", "Audited", "operator", "api", "succeeded"),
        ("upgrade", "Audited", "operator", "api", "succeeded"),
        ("pause", "", "root", "api", "succeeded"),
        ("resume", "", "root", "api", "succeeded"),
        ("remove", "Audited", "operator", "api", "succeeded"),
    ]
    assert ops[2].remote_addr == "192.0.2.10"
    assert all(o.remote_addr for o in ops)
    assert all(o.started_at <= o.finished_at for o in ops)  # type: ignore[operator]
    assert ops[0].sha256 and ops[1].sha256 != ops[0].sha256
    assert (ops[1].version, ops[1].previous_version) == ("1.1.0", "1.0.0")


def test_it_records_a_failed_step_with_its_reason(
    api: APIClient, packages: Packages, imported: Callable[..., ExtensionPackage]
) -> None:
    # The database refuses the package's row (a full disk): step 3 fails, the audit says so.
    from django.db import DatabaseError, connection

    def fail(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        if sql.lstrip().upper().startswith("INSERT") and "extadmin_extensionpackage" in sql:
            raise DatabaseError("disk full")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail):
        response = upload(api, packages.make("Doomed"))
    assert response.status_code == 400
    assert response.json() == {"error": {"step": "persist", "reason": "disk full"}}
    op = Operation.objects.get(package_name="Doomed")
    assert (op.outcome, op.error_step, op.error, op.via) == ("failed", "persist", "disk full", "api")
    assert list(op.steps.values_list("name", "outcome")) == [
        ("checksum", "backed_out"), ("unzip", "backed_out"), ("persist", "failed")
    ]


def test_it_serves_the_audit_trail_filtered_by_package(
    api: APIClient, imported: Callable[..., ExtensionPackage]
) -> None:
    imported("One")
    imported("Two")
    imported("One", "1.0.1")
    everything = api.get("/api/operations/").json()
    assert [(o["kind"], o["package"]) for o in everything] == [
        ("upgrade", "One"), ("import", "Two"), ("import", "One")
    ]
    one = api.get("/api/operations/", {"package": "One"}).json()
    assert [o["version"] for o in one] == ["1.0.1", "1.0.0"]
    assert {"user", "remote_addr", "via", "started_at", "finished_at", "outcome", "steps"} <= set(one[0])
    assert len(api.get("/api/operations/", {"limit": 1}).json()) == 1
    assert api.get("/api/operations/", {"limit": "lots"}).status_code == 400


def test_it_shows_a_package_s_operations_on_its_api_page(
    api: APIClient, imported: Callable[..., ExtensionPackage]
) -> None:
    imported("Paged")
    imported("Paged", "2.0.0")
    detail = api.get("/api/extensions/Paged/").json()
    assert [o["kind"] for o in detail["operations"]] == ["upgrade", "import"]


def test_it_records_cli_operations_as_cli(imported: Callable[..., ExtensionPackage]) -> None:
    imported("ByCli")
    assert run_command("delete_extension", "ByCli")[0] == 0
    assert list(Operation.objects.order_by("id").values_list("kind", "via", "remote_addr")) == [
        ("import", "cli", None), ("remove", "cli", None)
    ]
