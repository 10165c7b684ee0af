"""Schemathesis against the served OpenAPI schema: generated requests to every operation, as an
operator and as a read-only user, never answer 500 and never answer outside the schema.

Bounded in examples (``EXTADMIN_FUZZ_EXAMPLES``, default 15 per operation, derandomized) so CI
stays short and repeatable; set it higher for a longer hunt. The requests go through the real WSGI application, the real
database and a real node storage; nothing is mocked.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from tests.semantics.support import imported, operator, packages, reader

__all__ = ["imported", "operator", "packages", "reader"]

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("EXTADMIN_FUZZ_EXAMPLES", "15"))
CHECKS = (not_a_server_error, response_schema_conformance, content_type_conformance)


def _token(user: User) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def _served_schema() -> dict[str, Any]:
    # The schema /api/schema/ serves, generated the same way (drf-spectacular), without a request:
    # collection must not need the database.
    return SchemaGenerator().get_schema(request=None, public=True)


schema = schemathesis.openapi.from_dict(json.loads(json.dumps(_served_schema(), default=str)))
APP = WSGIHandler()


@pytest.fixture(autouse=True)
def _a_package(imported: Any) -> None:
    imported("Fuzzed", "1.0.0")  # something for the name paths to find


@pytest.fixture(autouse=True)
def _keep_the_test_connection() -> Iterator[None]:
    # As Django's test client does: the end of a request must not close the connection that holds
    # the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_operator_requests_never_fail_the_server_or_the_schema(case: Any, operator: User) -> None:
    case.call_and_validate(app=APP, headers={"Authorization": f"Token {_token(operator)}"}, checks=CHECKS)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_read_only_requests_never_fail_the_server_or_the_schema(case: Any, reader: User) -> None:
    case.call_and_validate(app=APP, headers={"Authorization": f"Token {_token(reader)}"}, checks=CHECKS)
