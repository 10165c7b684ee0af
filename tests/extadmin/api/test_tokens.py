"""``create_api_token USERNAME``: prints the user's token, creating it on first use."""
from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from tests.processes import manage, run_command
from tests.semantics.support import make_user


@pytest.mark.django_db
def test_it_prints_a_new_token_then_the_same_one() -> None:
    user = make_user("pipeline")
    code, out, _ = run_command("create_api_token", "pipeline")
    assert code == 0
    key = out.strip()
    assert key == Token.objects.get(user=user).key and len(key) == 40
    code, again, _ = run_command("create_api_token", "pipeline", "--json")
    assert json.loads(again) == {"username": "pipeline", "token": key, "created": False}


@pytest.mark.django_db
def test_it_refuses_an_unknown_user_with_one_error_line() -> None:
    code, out, err = run_command("create_api_token", "nobody")
    assert (code, out) == (1, "")
    assert err.strip() == "error: token: no user named 'nobody'; create the user first"
    assert not Token.objects.exists()


@pytest.mark.django_db
def test_it_authenticates_the_api_with_the_printed_token() -> None:
    make_user("pipeline")
    key = run_command("create_api_token", "pipeline")[1].strip()
    from rest_framework.test import APIClient

    client = APIClient()
    assert client.get("/api/extensions/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/extensions/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_it_works_as_a_real_command_process() -> None:
    User.objects.create_user("real")
    done = manage("create_api_token", "real")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == Token.objects.get(user__username="real").key
    done = manage("create_api_token", "ghost")
    assert done.returncode == 1
    assert done.stderr.strip() == "error: token: no user named 'ghost'; create the user first"
