"""Rollback and quarantine, through the services and the commands (this process's node ``web``)."""
from __future__ import annotations

import json
import re

import pytest

from extadmin.models import Archive, ArchiveChunk, ExtensionPackage, Operation, Quarantine, RetainedVersion
from extadmin.operations import Actor
from extadmin.packaging import Conflict, Refusal
from extadmin.quarantine import package_quarantine
from extadmin.rollback import package_rollback
from tests.extadmin.conftest import assert_installed, error_line, import_path, sha256_of
from tests.processes import run_command

pytestmark = pytest.mark.django_db


def test_it_rolls_back_to_the_previous_version_byte_identical(node_storage, make_package):
    v1, v2 = make_package("Alpha", "1.0.0"), make_package("Alpha", "2.0.0")
    import_path(v1)
    import_path(v2)

    doc = package_rollback(name="Alpha")

    assert (doc["version"], doc["previous_version"], doc["kind"]) == ("1.0.0", "2.0.0", "rollback")
    assert_installed(node_storage, v1, "Alpha", "1.0.0")  # this node's folder, .chk, row and archive
    # v2 is now the retained one; v1's chunks went back to the package, none copied.
    assert list(RetainedVersion.objects.values_list("version", "sha256")) == [("2.0.0", sha256_of(v2))]
    assert ArchiveChunk.objects.count() == Archive.objects.get().chunk_count + RetainedVersion.objects.get().chunk_count
    op = Operation.objects.filter(kind="rollback").get()
    assert (op.version, op.previous_version, op.outcome, op.sha256) == ("1.0.0", "2.0.0", "succeeded", sha256_of(v1))
    assert [s.name for s in op.steps.all()] == ["checksum", "unzip", "persist", "archive"]


def test_it_rolls_back_to_a_named_version_and_forward_again(node_storage, make_package):
    v1, v2, v3 = (make_package("Alpha", v) for v in ("1.0.0", "2.0.0", "3.0.0"))
    for path in (v1, v2, v3):
        import_path(path)
    package_rollback(name="Alpha", to="1.0.0")
    assert_installed(node_storage, v1, "Alpha", "1.0.0")
    package_rollback(name="Alpha", to="3.0.0")  # a version rolled back from is retained: forward again
    assert_installed(node_storage, v3, "Alpha", "3.0.0")


def test_it_still_refuses_an_uploaded_downgrade(node_storage, make_package):
    import_path(make_package("Alpha", "1.0.0"))
    import_path(make_package("Alpha", "2.0.0"))
    with pytest.raises(Conflict, match=re.escape("remove it before importing Alpha:1.0.0")):
        import_path(make_package("Alpha", "1.0.0", filename="again.zip"))


def test_it_refuses_naming_the_dependent_that_needs_a_higher_version(node_storage, make_package):
    import_path(make_package("Alpha", "1.0.0"))
    import_path(make_package("Alpha", "2.0.0"))
    import_path(make_package("Beta", "1.0.0", depends_on="Alpha:2.0.0"))
    before = ExtensionPackage.objects.get(name="Alpha").sha256

    code, _, err = run_command("rollback", "Alpha")

    assert code == 1
    assert error_line(err) == (
        "error: validate: Beta:1.0.0 depends on Alpha:2.0.0; rolling Alpha back to 1.0.0 would break it"
    )
    assert ExtensionPackage.objects.get(name="Alpha").sha256 == before
    assert node_storage.read_chk("Alpha") == before


@pytest.mark.parametrize(("args", "said"), [
    (["Nope"], "error: validate: no extension package named 'Nope' is installed"),
    (["Alpha", "--to", "0.9.0"], "error: validate: Alpha:0.9.0 is not a retained version (retained: none)"),
    (["Alpha", "--to", "1.0.0"], "error: validate: Alpha:1.0.0 is already the current version"),
    (["Alpha"], "error: validate: Alpha has no version to roll back to: no earlier version is retained"),
])
def test_it_refuses_a_rollback_with_nothing_to_go_to(node_storage, make_package, args, said):
    import_path(make_package("Alpha", "1.0.0"))
    code, _, err = run_command("rollback", *args)
    assert (code, error_line(err)) == (1, said)


def test_it_rolls_back_from_the_command_line_as_json(node_storage, make_package):
    v1 = make_package("Alpha", "1.0.0")
    import_path(v1)
    import_path(make_package("Alpha", "2.0.0"))
    code, out, _ = run_command("rollback", "Alpha", "--to", "1.0.0", "--json")
    assert code == 0
    doc = json.loads(out)
    assert (doc["version"], doc["checksum"], doc["previous_version"]) == ("1.0.0", sha256_of(v1), "2.0.0")


def test_it_lists_versions_with_who_and_when(node_storage, make_package, django_user_model):
    alice = django_user_model.objects.create_user("alice")
    import_path(make_package("Alpha", "1.0.0"), actor=Actor(user=alice))
    import_path(make_package("Alpha", "2.0.0"))
    code, out, _ = run_command("versions", "Alpha", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["keep"] == 3
    assert [(v["version"], v["current"], v["imported_by"]) for v in doc["versions"]] == [
        ("2.0.0", True, ""), ("1.0.0", False, "alice"),
    ]
    code, text, _ = run_command("versions", "Alpha")
    assert "1.0.0" in text and "retained" in text and "by alice" in text


# --- quarantine -------------------------------------------------------------------------------

def test_it_quarantines_and_refuses_the_same_bytes_again_409(node_storage, make_package):
    v2 = make_package("Alpha", "2.0.0")
    import_path(make_package("Alpha", "1.0.0"))
    import_path(v2)

    doc = package_quarantine(name="Alpha", version="2.0.0", reason="leaks memory", rollback=True)

    assert doc["rolled_back_to"] == "1.0.0"
    assert Quarantine.objects.get().sha256 == sha256_of(v2)
    assert Operation.objects.filter(kind="quarantine", outcome="succeeded", version="2.0.0").count() == 1
    with pytest.raises(Conflict) as refused:
        import_path(v2)
    assert (refused.value.status, str(refused.value)) == (409, "checksum: quarantined: leaks memory")
    code, _, err = run_command("import_extension", str(v2))
    assert (code, error_line(err)) == (1, "error: checksum: quarantined: leaks memory")
    assert ExtensionPackage.objects.get().version == "1.0.0"


def test_it_never_rolls_back_to_a_quarantined_version(node_storage, make_package):
    for v in ("1.0.0", "2.0.0", "3.0.0"):
        import_path(make_package("Alpha", v))
    package_quarantine(name="Alpha", version="2.0.0", reason="bad")
    doc = package_rollback(name="Alpha")  # skips 2.0.0
    assert doc["version"] == "1.0.0"
    with pytest.raises(Conflict, match=re.escape("Alpha:2.0.0 is quarantined: bad")):
        package_rollback(name="Alpha", to="2.0.0")


@pytest.mark.parametrize(("args", "said"), [
    (["Alpha", "1.0.0", "--reason", " "],
     "error: validate: a reason is required: say why this version must never be installed again"),
    (["Alpha", "9.9.9", "--reason", "x"],
     "error: validate: Alpha:9.9.9 is not a version of Alpha kept here (versions: 1.0.0)"),
    (["Alpha", "1.0.0", "--reason", "x", "--rollback"],
     "error: validate: Alpha has no version to roll back to: no earlier version is retained"),
])
def test_it_refuses_a_quarantine_writing_nothing(node_storage, make_package, args, said):
    import_path(make_package("Alpha", "1.0.0"))
    code, _, err = run_command("quarantine", *args)
    assert (code, error_line(err)) == (1, said)
    assert not Quarantine.objects.exists()
    assert not Operation.objects.filter(kind="quarantine").exists()


def test_it_refuses_to_quarantine_twice(node_storage, make_package):
    import_path(make_package("Alpha", "1.0.0"))
    code, out, _ = run_command("quarantine", "Alpha", "1.0.0", "--reason", "crashes")
    assert code == 0 and out.strip() == "quarantined Alpha 1.0.0: crashes"
    with pytest.raises(Refusal, match="already quarantined: crashes"):
        package_quarantine(name="Alpha", version="1.0.0", reason="again")
