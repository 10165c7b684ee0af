"""The ordered removal: undeploy, archive, package, local folder — and a retry after any failure."""
from __future__ import annotations

import pytest
from django.db import connection

from extadmin.models import ExtensionPackage, Operation, OperationStep
from extadmin.operations import Actor
from extadmin.packaging import Conflict, Refusal
from extadmin.removal import package_remove, removal_check
from tests.extadmin.conftest import assert_nothing_of, connection_killed_on, import_path, leftovers, nonzero_rows
from tests.processes import child_env, manage

AUDIT = ("extadmin.Operation", "extadmin.OperationStep")


@pytest.mark.django_db
def test_it_leaves_no_trace_after_an_import_and_a_removal(node_storage, imported):
    package = imported("Alpha")

    op = package_remove(name="Alpha", actor=Actor(via="cli"))

    assert (op.kind, op.outcome, op.version, op.sha256) == ("remove", "succeeded", "1.0.0", package.sha256)
    assert list(op.steps.order_by("number").values_list("name", "outcome")) == [
        ("undeploy", "succeeded"), ("archive", "succeeded"), ("package", "succeeded"), ("local", "succeeded"),
    ]
    assert_nothing_of(node_storage, "Alpha")
    assert list(node_storage.extensions.iterdir()) == []
    assert nonzero_rows(ignore=(*AUDIT, "nodes.Node")) == {}


@pytest.mark.django_db
def test_it_removes_only_the_named_package(node_storage, imported):
    imported("Alpha")
    beta = imported("Beta")

    package_remove(name="Alpha")

    assert [p.name for p in ExtensionPackage.objects.all()] == ["Beta"]
    assert [p.name for p in node_storage.extensions.iterdir()] == ["Beta"]
    assert beta.archive.chunk_count == beta.chunks.count() > 0


@pytest.mark.django_db
def test_it_refuses_to_remove_a_package_others_depend_on(node_storage, imported):
    imported("CommonUtils", "1.2.0")
    imported("JsonTools", "0.9.1")
    imported("MqttBridge", "3.1.4", depends_on="CommonUtils:1.2.0, JsonTools:0.9.1")
    imported("Dashboard", "1.0.0", depends_on="CommonUtils:1.0.0")
    ops_before = Operation.objects.count()

    with pytest.raises(Conflict) as refused:
        package_remove(name="CommonUtils")

    assert refused.value.status == 409 and refused.value.step == "validate"
    assert refused.value.reason == (
        "CommonUtils cannot be removed while these packages depend on it: Dashboard:1.0.0, MqttBridge:3.1.4"
    )
    assert ExtensionPackage.objects.get(name="CommonUtils").state == "active"
    assert node_storage.chk_path("CommonUtils").exists()
    assert Operation.objects.count() == ops_before


@pytest.mark.django_db
def test_it_does_not_mistake_a_longer_name_for_a_dependent(node_storage, imported):
    imported("Common")
    imported("CommonUtils", depends_on="")
    imported("Uses", depends_on="CommonUtils:1.0.0")

    package_remove(name="Common")

    assert not ExtensionPackage.objects.filter(name="Common").exists()


@pytest.mark.django_db
def test_it_removes_dependents_first_then_the_dependency(node_storage, imported):
    imported("Base")
    imported("Top", depends_on="Base:1.0.0")

    package_remove(name="Top")
    package_remove(name="Base")

    assert_nothing_of(node_storage, "Base")
    assert_nothing_of(node_storage, "Top")


@pytest.mark.django_db
def test_it_refuses_to_remove_a_package_that_is_not_installed(node_storage):
    with pytest.raises(Refusal, match="no extension package named 'Ghost' is installed"):
        removal_check(name="Ghost")
    with pytest.raises(Refusal):
        package_remove(name="Ghost")
    assert nonzero_rows() == {}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("point", "step"),
    [("remove.after_undeploy", "undeploy"), ("remove.after_archive", "archive"), ("remove.after_package", "package")],
)
def test_it_completes_a_retried_removal_after_a_failure(node_storage, imported, monkeypatch, point, step):
    package = imported("Alpha")
    monkeypatch.setenv("EXTADMIN_FAULTS", f"{point}=raise")

    with pytest.raises(Refusal) as refused:
        package_remove(name="Alpha")

    assert refused.value.step == step
    failed = Operation.objects.get(kind="remove")
    assert (failed.outcome, failed.error_step) == ("failed", step)
    assert failed.steps.get(name=step).outcome == OperationStep.Outcome.FAILED
    # The archive, package and folder are still whole: the database part rolled back together.
    still = ExtensionPackage.objects.get(name="Alpha")
    assert still.sha256 == package.sha256
    assert still.archive.chunk_count == still.chunks.count()
    assert node_storage.chk_path("Alpha").exists()

    monkeypatch.delenv("EXTADMIN_FAULTS")
    op = package_remove(name="Alpha")

    assert op.outcome == "succeeded"
    assert_nothing_of(node_storage, "Alpha")


@pytest.mark.django_db
def test_it_marks_an_undeployed_package_as_removing_until_the_removal_is_retried(
    node_storage, imported, monkeypatch
):
    imported("Alpha")
    monkeypatch.setenv("EXTADMIN_FAULTS", "remove.after_archive=raise")

    with pytest.raises(Refusal):
        package_remove(name="Alpha")

    # Undeploy is its own step: the package stays "removing" (not offered) until a retry finishes.
    assert ExtensionPackage.objects.get(name="Alpha").state == ExtensionPackage.State.REMOVING


@pytest.mark.django_db
def test_it_refuses_an_import_while_the_package_is_being_removed(node_storage, imported, make_package, monkeypatch):
    imported("Alpha")
    monkeypatch.setenv("EXTADMIN_FAULTS", "remove.after_archive=raise")
    with pytest.raises(Refusal):
        package_remove(name="Alpha")
    monkeypatch.delenv("EXTADMIN_FAULTS")

    with pytest.raises(Conflict, match="Alpha is being removed"):
        import_path(make_package("Alpha", "2.0.0"))


@pytest.mark.django_db(transaction=True)
def test_it_completes_a_removal_retried_after_the_connection_was_killed(node_storage, imported):
    imported("Alpha")

    with connection_killed_on("extadmin_archivechunk") as fired, pytest.raises(Refusal) as refused:
        package_remove(name="Alpha")

    assert fired and refused.value.step == "archive"
    assert ExtensionPackage.objects.get(name="Alpha").chunks.exists()
    assert node_storage.package_dir("Alpha").is_dir()

    package_remove(name="Alpha")

    assert_nothing_of(node_storage, "Alpha")
    assert connection.is_usable()


@pytest.mark.django_db
def test_it_finishes_the_removal_when_the_folder_was_already_deleted_by_hand(node_storage, imported):
    import shutil

    imported("Alpha")
    shutil.rmtree(node_storage.package_dir("Alpha"))

    package_remove(name="Alpha")

    assert_nothing_of(node_storage, "Alpha")
    assert leftovers(node_storage) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("point", ["remove.after_undeploy", "remove.after_archive", "remove.after_package"])
def test_it_completes_a_removal_retried_after_the_process_died(node_storage, imported, point):
    imported("Alpha")
    env = child_env(EXTADMIN_NODE="web", EXTADMIN_STORAGE=str(node_storage.root), EXTADMIN_FAULTS=f"{point}=kill")

    died = manage("delete_extension", "Alpha", env=env)

    assert died.returncode == -9
    package = ExtensionPackage.objects.get(name="Alpha")
    assert package.state == ExtensionPackage.State.REMOVING
    assert package.archive.chunk_count == package.chunks.count()

    again = manage("delete_extension", "Alpha", env={**env, "EXTADMIN_FAULTS": ""})

    assert again.returncode == 0, again.stderr
    assert_nothing_of(node_storage, "Alpha")
    outcomes = dict(Operation.objects.filter(kind="remove").values_list("outcome", "error"))
    assert set(outcomes) == {"interrupted", "succeeded"}


@pytest.mark.django_db
def test_it_removes_a_folder_replaced_by_a_link_without_following_it(node_storage, imported, tmp_path):
    import shutil

    imported("Alpha")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    shutil.rmtree(node_storage.package_dir("Alpha"))
    node_storage.package_dir("Alpha").symlink_to(outside)

    package_remove(name="Alpha")

    assert (outside / "precious.txt").read_text() == "keep me"
    assert_nothing_of(node_storage, "Alpha")
    assert not node_storage.package_dir("Alpha").is_symlink()


@pytest.mark.django_db
def test_it_removes_a_large_package_without_loading_its_archive(node_storage, pkgdir):
    import tracemalloc

    from tests.extadmin.conftest import MiB, stored_package

    import_path(stored_package(pkgdir / "Big.zip", "Big", 30 * MiB))

    tracemalloc.start()
    try:
        package_remove(name="Big")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 5 * MiB, f"the removal peaked at {peak / MiB:.0f} MiB"
    assert_nothing_of(node_storage, "Big")
