from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from extadmin.models import ArchiveChunk
from extadmin.storage import NodeStorage
from tests.nodes.conftest import Importer

pytestmark = pytest.mark.django_db


def test_sync_node_exits_0_when_the_node_matches_the_database(
    import_package: Importer, n1: NodeStorage, capsys
) -> None:  # type: ignore[no-untyped-def]
    alpha = import_package("Alpha")

    call_command("sync_node", "--name", "n1", "--storage", str(n1.root), "--json")

    out = json.loads(capsys.readouterr().out)
    assert (out["outcome"], out["actions"]) == ("succeeded", ["installed Alpha 1.0.0"])
    assert n1.read_chk("Alpha") == alpha.sha256


def test_sync_node_exits_1_and_says_why_when_a_package_fails(
    import_package: Importer, n1: NodeStorage, capsys
) -> None:  # type: ignore[no-untyped-def]
    alpha = import_package("Alpha")
    ArchiveChunk.objects.filter(package=alpha).update(data=b"not the zip")

    with pytest.raises(SystemExit) as exit_:
        call_command("sync_node", "--name", "n1", "--storage", str(n1.root))

    assert exit_.value.code == 1
    assert capsys.readouterr().err.startswith("error: sync of n1 failed: Alpha: checksum mismatch:")
    assert n1.installed_names() == []


def test_sync_node_refuses_another_nodes_storage(import_package: Importer, n1: NodeStorage, capsys) -> None:  # type: ignore[no-untyped-def]
    call_command("sync_node", "--name", "n1", "--storage", str(n1.root))

    with pytest.raises(SystemExit) as exit_:
        call_command("sync_node", "--name", "n2", "--storage", str(n1.root))

    assert exit_.value.code == 1
    assert "belongs to node n1" in capsys.readouterr().err
