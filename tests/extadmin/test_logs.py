"""Log lines: one JSON object a line with the node, package and operation they are about, and no
credential in any of them (``extadmin.logs``), through the real import and sync code."""
from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from extadmin.logs import JsonFormatter, _secret_values, filtered, formatter, log_context, redact
from extadmin.models import Operation
from nodes.models import SyncRun
from nodes.reconcile import reconcile
from tests.extadmin.conftest import import_path
from tests.processes import child_env, manage

Lines = Callable[[], list[dict[str, str]]]


@pytest.fixture
def json_lines() -> Iterator[Lines]:
    """The root logger's lines as parsed JSON, written by a handler made as every handler is."""
    out = io.StringIO()
    handler = filtered(logging.StreamHandler(out))
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in out.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def test_it_writes_one_json_object_a_line_with_time_level_logger_and_context(json_lines: Lines) -> None:
    with log_context(node="rack-1", package="Alpha", operation_id=7):
        logging.getLogger("extadmin.test").warning("two\nlines of %s", "text")
    logging.getLogger("extadmin.test").info("after")

    first, after = json_lines()
    assert first["time"].endswith("Z") and first["time"][10] == "T"
    assert (first["level"], first["logger"], first["message"]) == ("WARNING", "extadmin.test", "two\nlines of text")
    assert (first["node"], first["package"], first["operation_id"]) == ("rack-1", "Alpha", "7")
    assert (after["package"], after["operation_id"]) == ("", "")  # the context ended with its block


def test_it_puts_the_exception_text_in_a_field_masked(json_lines: Lines) -> None:
    try:
        raise RuntimeError("cannot reach redis://:brokerpass99@10.0.0.5:6379/0")
    except RuntimeError:
        logging.getLogger("extadmin.test").exception("failed")

    (line,) = json_lines()
    assert line["message"] == "failed"
    assert "RuntimeError: cannot reach redis://:***@10.0.0.5:6379/0" in line["exception"]
    assert "brokerpass99" not in json.dumps(line)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("postgres://extadmin:db-pass-1@db:5432/extadmin", "db-pass-1"),
        ("amqp://guest:guest@127.0.0.1:5672//", "guest@"),
        ("broker redis://user:p%40ss@h:6379/0;redis://user:p%40ss@h2:6379/0", "p%40ss"),
        ("GET /api/x?token=abc123&page=2", "abc123"),
        ("host=db password=hunter2 dbname=x", "hunter2"),
        ("{'PASSWORD': 'dict-pass', 'HOST': 'db'}", "dict-pass"),
        ('{"client_secret": "oidc-secret"}', "oidc-secret"),
        ("Authorization: Bearer eyJhbGciOi.x.y", "eyJhbGciOi"),
        ("'HTTP_AUTHORIZATION': 'Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b'", "9944b0"),
    ],
)
def test_it_masks_credentials_by_their_shape(text: str, secret: str) -> None:
    assert secret not in redact(text, secrets=())


def test_it_masks_the_values_of_secret_settings_wherever_they_appear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXTADMIN_METRICS_TOKEN", "metrics-token-xyz")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://agent:broker%2Fpass@r:6379/1")
    _secret_values.cache_clear()
    try:
        text = redact("scraped with metrics-token-xyz; the broker said broker/pass and broker%2Fpass")
    finally:
        _secret_values.cache_clear()
    assert "metrics-token-xyz" not in text and "broker/pass" not in text and "broker%2Fpass" not in text
    assert "scraped with" in text  # the rest of the line stays


@pytest.mark.django_db(transaction=True)  # "committed" means a real commit
def test_it_names_the_node_package_and_operation_of_an_import(
    json_lines: Lines, node_storage, make_package, monkeypatch  # type: ignore[no-untyped-def]
) -> None:
    # What fails after the commit is logged, not raised: a line from inside the import.
    monkeypatch.setenv("EXTADMIN_FAULTS", "import.after_commit=raise")
    import_path(make_package("Alpha"))

    op = Operation.objects.get(package_name="Alpha")
    (line,) = [x for x in json_lines() if x["logger"] == "extadmin.importing"]
    assert (line["node"], line["package"], line["operation_id"]) == ("web", "Alpha", str(op.pk))
    assert "fault injected at import.after_commit" in line["exception"]


@pytest.mark.django_db
def test_it_names_the_node_of_a_sync(json_lines: Lines, node_storage, make_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import_path(make_package("Alpha"))

    reconcile(node_name="rack-2", storage_root=tmp_path / "rack-2", trigger=SyncRun.Trigger.MANUAL,
              verify_contents=False)

    lines = [x for x in json_lines() if x["logger"] == "nodes.reconcile"]
    assert lines and all(x["node"] == "rack-2" for x in lines)
    assert any("Alpha" in x["message"] for x in lines)


def test_it_stays_text_unless_json_is_asked_for_and_refuses_any_other_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXTADMIN_LOG_FORMAT", raising=False)
    assert type(formatter()) is logging.Formatter
    monkeypatch.setenv("EXTADMIN_LOG_FORMAT", "JSON")
    assert isinstance(formatter(), JsonFormatter)
    monkeypatch.setenv("EXTADMIN_LOG_FORMAT", "yaml")
    with pytest.raises(ImproperlyConfigured, match="EXTADMIN_LOG_FORMAT must be 'json' or 'text', not 'yaml'"):
        formatter()


@pytest.mark.django_db(transaction=True)
def test_it_writes_an_agents_refusal_to_start_as_a_json_line(tmp_path: Path) -> None:
    storage = tmp_path / "shared"
    assert manage("sync_node", "--name", "first", "--storage", str(storage)).returncode == 0  # claims it

    refused = manage("run_node", "--name", "second", "--storage", str(storage),
                     env=child_env(EXTADMIN_LOG_FORMAT="json"), timeout=60)

    assert refused.returncode == 1
    (line,) = [json.loads(x) for x in refused.stderr.splitlines()]
    assert (line["level"], line["node"]) == ("ERROR", "second")
    assert line["message"].startswith("error: start: ") and "first" in line["message"]
    assert refused.stdout == ""
