"""A deployment pipeline that drives only the API, with one token, as issue 5's "done when" reads.

The second node's agent is played by ``sync_node`` (one sync pass), so that convergence can be
read back from ``/api/cluster/``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from nodes.models import Node
from tests.processes import run_command
from tests.semantics.support import OPERATOR_PERMS, Packages, make_user, token_client, upload

pytestmark = pytest.mark.django_db


def _converged(doc: dict[str, Any]) -> dict[str, bool]:
    return {e["name"]: e["converged"] for e in doc["extensions"]}


def test_it_runs_the_whole_pipeline_through_the_api(node_storage: Any, packages: Packages, tmp_path: Path) -> None:
    api = token_client(make_user("pipeline", *OPERATOR_PERMS, "nodes.change_clustersettings"))
    node2 = tmp_path / "node-2"

    def agents_sync() -> tuple[int, str, str]:
        done = run_command("sync_node", "--name", "node-2", "--storage", str(node2))
        Node.objects.update(last_heartbeat=timezone.now())  # both agents are alive
        return done

    base, dependent = packages.make("Base", "1.0.0"), packages.make("App", "2.2", depends_on="Base:1.0.0")

    # 1. validate: every check, nothing imported
    r = upload(api, base, validate=True)
    assert (r.status_code, r.json()["validated"], r.json()["kind"]) == (200, True, "import")
    assert api.get("/api/extensions/").json() == []

    # 2. import a base and a dependent
    assert upload(api, base).status_code == 201
    r = upload(api, dependent)
    assert (r.status_code, r.json()["name"], r.json()["version"]) == (201, "App", "2.2")

    # 3. refuse a downgrade and a missing dependency, with clear 4xx JSON
    r = upload(api, packages.make("Base", "0.9.0"))
    assert r.status_code == 409
    assert r.json() == {
        "error": {"step": "validate", "reason": "Base:1.0.0 is installed; remove it before importing Base:0.9.0"}
    }
    r = upload(api, packages.make("Orphan", depends_on="Missing:1.0.0"))
    assert r.status_code == 400
    assert r.json() == {
        "error": {"step": "validate", "reason": "Orphan depends on Missing:1.0.0, which is not installed"}
    }

    # 4. refuse deleting a package that another depends on
    r = api.delete("/api/extensions/Base/")
    assert r.status_code == 409
    assert r.json()["error"]["dependents"] == ["App:2.2"]

    # 5. a bundle, with syncing paused around it: imported in dependency order, synced once on resume
    assert api.post("/api/cluster/pause/").json()["sync_paused"] is True
    bundle = packages.bundle("suite", [
        packages.make("Report", "1.0.0", depends_on="Chart:1.0.0;Base:1.0.0"),
        packages.make("Chart", "1.0.0", depends_on="Base:1.0.0"),
    ])
    r = upload(api, bundle)
    assert r.status_code == 201
    assert [p["name"] for p in r.json()["packages"]] == ["Chart", "Report"]
    code, _, err = agents_sync()
    assert code == 1 and "paused" in err  # the agent syncs nothing while paused
    paused = api.get("/api/cluster/").json()
    assert _converged(paused) == {"App": False, "Base": False, "Chart": False, "Report": False}
    assert {e["nodes"]["node-2"]["state"] for e in paused["extensions"]} == {"pending"}
    assert api.post("/api/cluster/resume/").json()["sync_paused"] is False

    # 6. upgrade in place
    r = upload(api, packages.make("Base", "1.1.0"))
    assert (r.status_code, r.json()["kind"], r.json()["version"]) == (201, "upgrade", "1.1.0")

    # 7. convergence, read from /api/cluster/
    code, _, err = agents_sync()
    assert code == 0, err
    doc = api.get("/api/cluster/").json()
    assert [n["name"] for n in doc["nodes"]] == ["node-2", "web"]
    assert _converged(doc) == {"App": True, "Base": True, "Chart": True, "Report": True}
    base_row = next(e for e in doc["extensions"] if e["name"] == "Base")
    assert base_row["version"] == "1.1.0"
    assert {n: c["checksum"] for n, c in base_row["nodes"].items()} == {
        "node-2": base_row["checksum"], "web": base_row["checksum"]
    }

    # and the audit trail tells the story
    kinds = [(o["kind"], o["package"]) for o in api.get("/api/operations/").json()]
    assert kinds[:3] == [("upgrade", "Base"), ("resume", ""), ("import", "Report")]
    assert ("pause", "") in kinds
