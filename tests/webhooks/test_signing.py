"""Signing and one HTTP attempt, against a real receiver on 127.0.0.1."""
from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from tests.processes import free_port
from tests.webhooks.receiver import Receiver
from webhooks.signing import post, signature, signature_valid

pytestmark = pytest.mark.dbless  # no database, no broker: .ci/run runs it once


def test_it_signs_the_exact_body_with_hmac_sha256() -> None:
    body = b'{"event":"sync.paused"}'
    expected = "sha256=" + hmac.new(b"k" * 16, body, hashlib.sha256).hexdigest()
    assert signature(secret="k" * 16, body=body) == expected
    assert signature_valid(secret="k" * 16, body=body, header=expected)
    assert not signature_valid(secret="k" * 16, body=body + b" ", header=expected)


def test_it_posts_the_body_and_headers(receiver: Receiver) -> None:
    answer = post(url=receiver.url + "?a=1", body=b"{}", headers={"X-Extadmin-Signature": "sha256=x"}, timeout=5)
    assert answer.delivered and answer.status == 200 and answer.error == ""
    [got] = receiver.requests
    assert got.path == "/hook?a=1" and got.body == b"{}"
    assert got.headers["X-Extadmin-Signature"] == "sha256=x"


def test_it_reports_an_error_status(receiver: Receiver) -> None:
    receiver.fail(500)
    answer = post(url=receiver.url, body=b"{}", headers={}, timeout=5)
    assert not answer.delivered
    assert (answer.status, answer.error) == (500, "HTTP 500 Internal Server Error")


def test_it_gives_up_on_a_receiver_that_never_answers_within_the_timeout(receiver: Receiver) -> None:
    receiver.hang()
    t0 = time.monotonic()
    answer = post(url=receiver.url, body=b"{}", headers={}, timeout=0.5)
    assert time.monotonic() - t0 < 2
    assert (answer.status, answer.error) == (None, "no answer within 0.5 s")


def test_it_reports_a_refused_connection() -> None:
    answer = post(url=f"http://127.0.0.1:{free_port()}/", body=b"{}", headers={}, timeout=2)
    assert (answer.status, answer.error) == (None, "connection refused")
