"""The sample alert rules (``docs/prometheus-alerts.yml``) are a valid rules file (``promtool check
rules``), each alert fires when it should (``promtool test rules`` on docs/prometheus-alerts.test.yml),
and every metric they name is one that ``/metrics`` answers."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import ROOT

RULES = ROOT / "docs" / "prometheus-alerts.yml"


def test_it_is_a_rules_file_with_every_required_key() -> None:
    doc = yaml.safe_load(RULES.read_text())
    [group] = doc["groups"]
    assert group["name"] == "extadmin"
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    assert {"ExtadminNodeOffline", "ExtadminPackageNotConverged", "ExtadminSyncFailuresRising",
            "ExtadminNodeDegraded"} <= set(alerts)
    for name, rule in alerts.items():
        assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"}, name
        assert re.fullmatch(r"\d+[smhd]", rule["for"]), name
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, name
        assert {"summary", "description"} <= set(rule["annotations"]), name


def promtool() -> str:
    found = shutil.which("promtool") or shutil.which("promtool", path=str(ROOT / ".venv" / "bin"))
    assert found, "promtool is missing: scripts/setup --with-browser (which scripts/test runs) puts it in .venv/bin"
    return found


@pytest.mark.dbless
def test_it_passes_promtool_check() -> None:
    done = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(yaml.safe_load(RULES.read_text())['groups'][0]['rules'])} rules found" in done.stdout


@pytest.mark.dbless
def test_every_alert_fires_on_what_it_watches_and_only_after_its_for() -> None:
    """``promtool test rules`` on docs/prometheus-alerts.test.yml, which tests each alert."""
    tests = RULES.with_name("prometheus-alerts.test.yml")
    tested = {case["alertname"] for t in yaml.safe_load(tests.read_text())["tests"] for case in t["alert_rule_test"]}
    assert tested == {rule["alert"] for rule in yaml.safe_load(RULES.read_text())["groups"][0]["rules"]}
    done = subprocess.run([promtool(), "test", "rules", tests.name], cwd=tests.parent, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.django_db
def test_it_names_only_metrics_that_the_console_answers() -> None:
    response = Client().get("/metrics", REMOTE_ADDR="127.0.0.1")
    families = list(text_string_to_metric_families(response.content.decode()))
    # An empty cluster has no node series yet: the families are declared all the same.
    names = {f.name for f in families} | {f"{f.name}_total" for f in families if f.type == "counter"}
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    used = {m for rule in rules for m in re.findall(r"\bextadmin_[a-z_]+", rule["expr"])}
    assert used and used <= names, used - names
