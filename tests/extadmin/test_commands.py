"""import_extension, delete_extension and list_extensions: exit codes, output, and nothing written on refusal.

A handful run as real ``manage.py`` child processes against the test database; the rest (the
whole hostile-zip corpus included) through ``call_command`` in this process.
"""
from __future__ import annotations

import json

import pytest

from extadmin.models import ExtensionPackage, Operation
from tests.disk import tree
from tests.extadmin.conftest import (
    HOSTILE,
    HOSTILE_LIMITS_ENV,
    HostileZip,
    assert_nothing_of,
    error_line,
    nonzero_rows,
    sha256_of,
)
from tests.packages import build_bundle, folder_files, zip_files
from tests.processes import child_env, manage, run_command


@pytest.fixture
def cli_env(node_storage, private_tempdir) -> dict[str, str]:
    return child_env(
        EXTADMIN_NODE="web", EXTADMIN_STORAGE=str(node_storage.root), TMPDIR=str(private_tempdir), EXTADMIN_FAULTS="",
    )


# --- real child processes ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_imports_lists_and_deletes_through_real_processes(node_storage, make_package, cli_env):
    path = make_package("Alpha", "1.2.3")

    imported = manage("import_extension", str(path), "--json", env=cli_env)

    assert imported.returncode == 0, imported.stderr
    doc = json.loads(imported.stdout)
    assert (doc["name"], doc["version"], doc["checksum"]) == ("Alpha", "1.2.3", sha256_of(path))
    assert node_storage.chk_path("Alpha").read_text().strip() == sha256_of(path)
    assert folder_files(node_storage.package_dir("Alpha"), skip="Alpha.chk") == zip_files(path)

    listed = manage("list_extensions", "--json", env=cli_env)

    assert listed.returncode == 0, listed.stderr
    assert [(e["name"], e["version"], e["checksum"]) for e in json.loads(listed.stdout)] == [
        ("Alpha", "1.2.3", sha256_of(path))
    ]

    deleted = manage("delete_extension", "Alpha", "--json", env=cli_env)

    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(deleted.stdout) == {
        "name": "Alpha", "version": "1.2.3", "checksum": sha256_of(path), "removed": True,
    }
    assert_nothing_of(node_storage, "Alpha")
    assert json.loads(manage("list_extensions", "--json", env=cli_env).stdout) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("label", ["zip slip ../x", "not a zip", "bad CRC", "DTD / XXE", "lying sizes"])
def test_it_refuses_hostile_zips_in_a_real_process(tmp_path, node_storage, cli_env, pkgdir, label):
    build, expect = HOSTILE[label]
    path = build(pkgdir / "hostile.zip")
    before = tree(tmp_path)

    result = manage("import_extension", str(path), env={**cli_env, **HOSTILE_LIMITS_ENV})

    assert result.returncode == 1, result.stdout + result.stderr
    line = error_line(result.stderr)
    assert expect in line and "Traceback" not in result.stderr
    assert tree(tmp_path) == before
    assert nonzero_rows() == {}


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_missing_dependency_in_a_real_process(node_storage, make_package, cli_env, tmp_path):
    path = make_package("Mqtt", depends_on="JsonTools:0.9.1")
    before = tree(tmp_path)

    result = manage("import_extension", str(path), env=cli_env)

    assert result.returncode == 1
    assert error_line(result.stderr) == (
        "error: validate: Mqtt depends on JsonTools:0.9.1, which is not installed"
    )
    assert tree(tmp_path) == before
    assert nonzero_rows() == {}


@pytest.mark.django_db(transaction=True)
def test_it_refuses_deleting_an_unknown_package_in_a_real_process(node_storage, cli_env):
    result = manage("delete_extension", "Ghost", env=cli_env)

    assert result.returncode == 1
    assert error_line(result.stderr) == "error: validate: no extension package named 'Ghost' is installed"
    assert result.stdout == ""


@pytest.mark.django_db(transaction=True)
def test_it_reports_the_failed_step_when_an_import_fails_in_a_real_process(node_storage, make_package, cli_env):
    path = make_package("Alpha")

    result = manage("import_extension", str(path), env={**cli_env, "EXTADMIN_FAULTS": "import.after_persist=raise"})

    assert result.returncode == 1
    assert error_line(result.stderr) == "error: persist: fault injected at import.after_persist"
    assert_nothing_of(node_storage, "Alpha")
    assert Operation.objects.get().error_step == "persist"


# --- call_command ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_prints_name_version_and_checksum(node_storage, make_package):
    path = make_package("Alpha", "2.2")

    code, out, err = run_command("import_extension", str(path))

    assert (code, err) == (0, "")
    assert out.strip() == f"imported Alpha 2.2 sha256:{sha256_of(path)}"


@pytest.mark.django_db
def test_it_prints_the_ha_warning(node_storage, make_package, settings):
    settings.EXTADMIN_HA_COMPATIBILITY = "warn"

    code, out, _ = run_command("import_extension", str(make_package("Alpha", ha_compatible=None)))

    assert code == 0
    assert out.splitlines()[1].startswith("warning: Alpha does not say it is safe for clusters")


@pytest.mark.django_db
def test_it_prints_json_with_name_version_and_checksum(node_storage, make_package):
    path = make_package("Alpha", "0.20201103.083645")

    code, out, _ = run_command("import_extension", str(path), "--json")

    doc = json.loads(out)
    assert code == 0
    assert (doc["name"], doc["version"], doc["checksum"], doc["kind"]) == (
        "Alpha", "0.20201103.083645", sha256_of(path), "import",
    )
    assert doc["warnings"] == []


@pytest.mark.django_db
def test_it_prints_every_package_of_a_bundle(node_storage, make_package, pkgdir):
    bundle = build_bundle(pkgdir, "bundle", [make_package("Top", depends_on="Base:1.0.0"), make_package("Base")])

    code, out, _ = run_command("import_extension", str(bundle), "--json")

    assert code == 0
    assert [p["name"] for p in json.loads(out)["packages"]] == ["Base", "Top"]


@pytest.mark.django_db
def test_it_validates_without_changing_anything(node_storage, make_package, tmp_path):
    path = make_package("Alpha")
    before = tree(tmp_path)

    code, out, _ = run_command("import_extension", str(path), "--validate-only", "--json")

    doc = json.loads(out)
    assert code == 0
    assert (doc["name"], doc["version"], doc["checksum"], doc["validated"]) == (
        "Alpha", "1.0.0", sha256_of(path), True,
    )
    assert tree(tmp_path) == before
    assert nonzero_rows() == {}

    code, out, _ = run_command("import_extension", str(path), "--validate-only")
    assert out.strip() == f"valid Alpha 1.0.0 sha256:{sha256_of(path)}"


@pytest.mark.django_db
def test_it_validates_a_refusal_without_changing_anything(node_storage, imported, make_package, tmp_path):
    imported("X", "3.0.1")
    older = make_package("X", "2.2.0")
    before = tree(tmp_path)
    rows = nonzero_rows()

    code, _, err = run_command("import_extension", str(older), "--validate-only")

    assert code == 1
    assert error_line(err) == "error: validate: X:3.0.1 is installed; remove it before importing X:2.2.0"
    assert tree(tmp_path) == before
    assert nonzero_rows() == rows


@pytest.mark.django_db
def test_it_refuses_a_path_that_is_not_a_file(node_storage, tmp_path):
    code, out, err = run_command("import_extension", str(tmp_path / "missing.zip"))

    assert code == 1 and out == ""
    assert error_line(err).startswith("error: validate: ") and "is not a file" in err


@pytest.mark.django_db
def test_it_deletes_and_prints_what_it_removed(node_storage, imported):
    imported("Alpha", "1.0.0")

    code, out, _ = run_command("delete_extension", "Alpha")

    assert (code, out.strip()) == (0, "removed Alpha 1.0.0")
    assert_nothing_of(node_storage, "Alpha")


@pytest.mark.django_db
def test_it_refuses_to_delete_a_depended_on_package(node_storage, imported):
    imported("Base")
    imported("Top", depends_on="Base:1.0.0")

    code, _, err = run_command("delete_extension", "Base", "--json")

    assert code == 1
    assert error_line(err) == "error: validate: Base cannot be removed while these packages depend on it: Top:1.0.0"
    assert ExtensionPackage.objects.count() == 2


@pytest.mark.django_db
def test_it_lists_packages_as_text_and_json(node_storage, imported):
    assert run_command("list_extensions")[1].strip() == "no extension packages"
    beta = imported("Beta", "2.0.0")
    alpha = imported("Alpha", "1.0.0")

    code, out, _ = run_command("list_extensions", "--json")

    assert code == 0
    assert [(p["name"], p["version"], p["checksum"]) for p in json.loads(out)] == [
        ("Alpha", "1.0.0", alpha.sha256), ("Beta", "2.0.0", beta.sha256),
    ]
    lines = run_command("list_extensions")[1].splitlines()
    assert lines[0].split() == ["Alpha", "1.0.0", alpha.sha256[:12]]


# --- the hostile corpus ----------------------------------------------------------------------


@pytest.mark.django_db
def test_it_refuses_every_hostile_zip_and_writes_nothing(
    hostile_zip: HostileZip, hostile_limits, node_storage, tmp_path, private_tempdir
):
    before = tree(tmp_path)

    code, out, err = run_command("import_extension", str(hostile_zip.path))

    assert code == 1, out
    line = error_line(err)
    assert line.startswith("error: validate: ") or line.startswith("error: unzip: "), line
    assert hostile_zip.expect in line, line
    assert out == ""
    assert tree(tmp_path) == before
    assert list(private_tempdir.iterdir()) == []
    assert nonzero_rows() == {}


@pytest.mark.django_db
def test_it_refuses_every_hostile_zip_in_validate_only_mode(hostile_zip: HostileZip, hostile_limits, node_storage):
    code, _, err = run_command("import_extension", str(hostile_zip.path), "--validate-only")

    assert code == 1
    assert hostile_zip.expect in error_line(err)


@pytest.mark.django_db
def test_it_reports_an_unusable_storage_folder_as_one_error_line(node_storage, make_package, settings, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    settings.EXTADMIN_STORAGE = blocker / "storage"

    code, out, err = run_command("import_extension", str(make_package("Alpha")))

    assert (code, out) == (1, "")
    line = error_line(err)
    assert line.startswith("error: storage: Not a directory") and "Traceback" not in err
    assert nonzero_rows(ignore=("extadmin.Operation", "extadmin.OperationStep")) == {}


@pytest.mark.django_db(transaction=True)
def test_it_refuses_more_entries_than_the_default_limit_in_a_real_process(node_storage, cli_env, pkgdir, tmp_path):
    import zipfile

    path = pkgdir / "crowded.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.xml", "<Entities/>")
        for i in range(20_000):
            zf.writestr(f"f/{i}", b"")
    before = tree(tmp_path)

    result = manage("import_extension", str(path), env=cli_env)

    assert result.returncode == 1
    assert error_line(result.stderr) == (
        "error: validate: the package has 20001 entries, more than the limit of 20000"
    )
    assert tree(tmp_path) == before
    assert nonzero_rows() == {}
