"""The ordered import: what lands on disk and in the database, and the backout when any step fails."""
from __future__ import annotations

import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from extadmin.models import Archive, ArchiveChunk, Entity, ExtensionPackage, Operation, OperationStep
from extadmin.operations import Actor
from extadmin.packaging import Conflict, Refusal
from extadmin.services import package_import_files
from extadmin.storage import NodeStorage
from nodes.models import Node, SyncState
from tests.extadmin.conftest import (
    FAULT_POINTS,
    FAULT_STEPS,
    HOSTILE,
    DatabaseWriteLock,
    MiB,
    assert_installed,
    assert_nothing_of,
    bundle_temp_dirs,
    connection_killed_on,
    import_path,
    leftovers,
    nonzero_rows,
    sha256_of,
    snapshot,
)
from tests.packages import build_bundle, build_fixture_package, build_package, metadata_xml, zip_files
from tests.processes import ROOT, child_env, manage

AUDIT = ("extadmin.Operation", "extadmin.OperationStep")


# --- the happy path ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_imports_a_package_into_its_folder_and_the_database(node_storage, make_package, settings):
    settings.EXTADMIN_CHUNK_BYTES = 1024
    path = make_package("Alpha", "1.0.0")

    (result,) = import_path(path)

    package = assert_installed(node_storage, path, "Alpha", "1.0.0")
    assert result.package == package and result.sha256 == sha256_of(path)
    assert list(package.entities.values_list("type", "name")) == [("Thing", "AlphaThing")]
    archive = package.archive
    assert archive.chunk_count == math.ceil(path.stat().st_size / 1024) > 1
    assert sorted(p for p, _, _ in archive.manifest) == sorted(zip_files(path))
    op = result.operation
    assert (op.kind, op.outcome, op.package_name, op.version, op.node, op.via) == (
        "import", "succeeded", "Alpha", "1.0.0", "web", "cli",
    )
    steps = list(op.steps.order_by("number").values_list("number", "name", "outcome"))
    assert steps == [
        (1, "checksum", "succeeded"),
        (2, "unzip", "succeeded"),
        (3, "persist", "succeeded"),
        (4, "archive", "succeeded"),
    ]
    assert Node.objects.get(name="web").storage_path == str(node_storage.root)
    assert leftovers(node_storage) == []


@pytest.mark.django_db
def test_it_imports_every_shared_sample(node_storage, pkgdir, make_package):
    make_package("JsonTools", "0.9.1")
    order = ["CommonUtils.xml", None, "DataExporterExtension.xml", "JavaWithDependencies.xml", "WidgetOnly.xml"]
    expected = {
        "CommonUtils": ("1.2.0", {("ScriptFunctionLibrary", "CommonUtilsFunctions")}),
        "JsonTools": ("0.9.1", {("Thing", "JsonToolsThing")}),
        "DataExporterExtension": (
            "1.1.5",
            {("Resource", "InfotableExporterFunctions"), ("Thing", "DataExporterRepository"),
             ("Widget", "infotableExporter")},
        ),
        "MqttBridge": (
            "3.1.4",
            {("ThingPackage", "MqttBridgePackage"), ("ThingTemplate", "MqttBridgeTemplate"),
             ("ThingShape", "MqttSubscriberShape"), ("DataShape", "MqttMessageShape")},
        ),
        "StatusLampWidget": ("2.2", {("Widget", "statuslamp")}),
    }
    for fixture in order:
        path = build_fixture_package(pkgdir, fixture) if fixture else pkgdir / "JsonTools-0.9.1.zip"
        (result,) = import_path(path)
        name = result.package.name
        version, entities = expected[name]
        assert_installed(node_storage, path, name, version)
        assert set(result.package.entities.values_list("type", "name")) == entities
    mqtt = ExtensionPackage.objects.get(name="MqttBridge")
    assert mqtt.depends_on == "CommonUtils:1.2.0;JsonTools:0.9.1"
    assert mqtt.ha_compatible is True and mqtt.minimum_platform_version == "9.3.0"
    assert '"commit":"4f2a9c1"' in mqtt.build_number
    assert ExtensionPackage.objects.get(name="StatusLampWidget").ha_compatible is True  # "TRUE"
    assert ExtensionPackage.objects.get(name="CommonUtils").ha_compatible is None


@pytest.mark.django_db
def test_it_reimports_the_same_version_in_place(node_storage, make_package, pkgdir):
    first = make_package("Alpha", "1.0.0")
    import_path(first)
    again = build_package(pkgdir, "Alpha", "1.0.0", filename="again.zip")  # new random jar bytes

    (result,) = import_path(again)

    assert result.operation.kind == "reimport"
    assert ExtensionPackage.objects.count() == 1
    assert_installed(node_storage, again, "Alpha", "1.0.0")
    assert ArchiveChunk.objects.filter(package=result.package).count() == Archive.objects.get().chunk_count
    # The other bytes of the same version are kept for rollback (extadmin.versions).
    assert list(result.package.retained_versions.values_list("version", "sha256")) == [("1.0.0", sha256_of(first))]


@pytest.mark.django_db
def test_it_upgrades_in_place_replacing_files_and_entities(node_storage, make_package):
    import_path(make_package("Alpha", "1.0.0"))
    widgets = '  <Widgets>\n    <Widget name="alphaLamp"/>\n  </Widgets>\n'
    new = make_package(
        "Alpha", "1.1.0",
        metadata=metadata_xml("Alpha", "1.1.0", entities=widgets),
        files={"lib/alpha-1.1.jar": os.urandom(100)},
    )

    (result,) = import_path(new)

    assert (result.operation.kind, result.operation.previous_version) == ("upgrade", "1.0.0")
    assert_installed(node_storage, new, "Alpha", "1.1.0")
    assert not (node_storage.package_dir("Alpha") / "lib" / "alpha.jar").exists()
    assert list(Entity.objects.values_list("type", "name")) == [("Widget", "alphaLamp")]
    assert SyncState.objects.count() == 1
    assert leftovers(node_storage) == []


@pytest.mark.django_db
def test_it_refuses_a_downgrade_with_a_conflict(node_storage, make_package):
    installed = make_package("X", "3.0.1")
    import_path(installed)
    before = snapshot(node_storage)

    with pytest.raises(Conflict) as refused:
        import_path(make_package("X", "2.2.0"))

    assert refused.value.status == 409
    assert refused.value.step == "validate"
    assert refused.value.reason == "X:3.0.1 is installed; remove it before importing X:2.2.0"
    assert snapshot(node_storage) == before
    assert_installed(node_storage, installed, "X", "3.0.1")
    assert Operation.objects.count() == 1


@pytest.mark.django_db
def test_it_refuses_a_missing_dependency_naming_it(node_storage, make_package):
    import_path(make_package("CommonUtils", "1.2.0"))

    with pytest.raises(Refusal) as refused:
        import_path(make_package("Mqtt", "1.0.0", depends_on="CommonUtils:1.2.0;JsonTools:0.9.1"))

    assert refused.value.step == "validate"
    assert "JsonTools:0.9.1" in refused.value.reason and "not installed" in refused.value.reason
    assert_nothing_of(node_storage, "Mqtt")


@pytest.mark.django_db
def test_it_refuses_a_dependency_that_is_too_old(node_storage, make_package):
    import_path(make_package("CommonUtils", "1.1.0"))

    with pytest.raises(Refusal, match=r"depends on CommonUtils:1\.2\.0, but CommonUtils:1\.1\.0 is installed"):
        import_path(make_package("Mqtt", "1.0.0", depends_on="CommonUtils:1.2.0"))

    assert_nothing_of(node_storage, "Mqtt")


@pytest.mark.django_db
@pytest.mark.parametrize("ha", [None, "false"])
def test_it_imports_a_package_not_marked_for_clusters_with_a_warning(node_storage, make_package, settings, ha):
    settings.EXTADMIN_HA_COMPATIBILITY = "warn"
    (result,) = import_path(make_package("Lonely", ha_compatible=ha))

    (warning,) = result.plan.warnings
    assert "Lonely" in warning and "haCompatible" in warning and "warn" in warning
    assert result.operation.warnings == warning
    assert ExtensionPackage.objects.get(name="Lonely").ha_compatible is (None if ha is None else False)


@pytest.mark.django_db
@pytest.mark.parametrize("policy", ["deny", "DENY", " Deny "])
@pytest.mark.parametrize("ha", [None, "false"])
def test_it_refuses_a_package_not_marked_for_clusters_when_the_policy_denies(
    node_storage, make_package, settings, ha, policy
):
    settings.EXTADMIN_HA_COMPATIBILITY = policy

    with pytest.raises(Refusal, match="HA policy is deny") as refused:
        import_path(make_package("Lonely", ha_compatible=ha))

    assert refused.value.step == "validate"
    assert nonzero_rows() == {}
    assert_nothing_of(node_storage, "Lonely")


@pytest.mark.django_db
def test_it_imports_a_cluster_safe_package_when_the_policy_denies(node_storage, make_package, settings):
    settings.EXTADMIN_HA_COMPATIBILITY = "deny"
    (result,) = import_path(make_package("Safe", ha_compatible="true"))
    assert result.plan.warnings == []


# --- backout --------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("point", FAULT_POINTS)
def test_it_backs_out_everything_when_a_step_fails(node_storage, make_package, monkeypatch, point):
    monkeypatch.setenv("EXTADMIN_FAULTS", f"{point}=raise")

    with pytest.raises(Refusal) as refused:
        import_path(make_package("Alpha"))

    step = FAULT_STEPS[point]
    assert refused.value.step == step
    assert f"fault injected at {point}" in refused.value.reason
    assert_nothing_of(node_storage, "Alpha")
    assert nonzero_rows(ignore=AUDIT) == {}
    op = Operation.objects.get()
    assert (op.kind, op.outcome, op.error_step) == ("import", "failed", step)
    assert f"fault injected at {point}" in op.error
    steps = list(op.steps.order_by("number").values_list("name", "outcome"))
    assert steps[-1] == (step, OperationStep.Outcome.FAILED)
    assert all(outcome == OperationStep.Outcome.BACKED_OUT for _, outcome in steps[:-1])


@pytest.mark.django_db
@pytest.mark.parametrize("point", FAULT_POINTS)
def test_it_keeps_the_previous_version_when_an_upgrade_fails(node_storage, make_package, monkeypatch, point):
    old = make_package("Alpha", "1.0.0")
    import_path(old)
    before = snapshot(node_storage)
    monkeypatch.setenv("EXTADMIN_FAULTS", f"{point}=raise")

    with pytest.raises(Refusal) as refused:
        import_path(make_package("Alpha", "1.1.0"))

    assert refused.value.step == FAULT_STEPS[point]
    assert snapshot(node_storage) == before
    assert leftovers(node_storage) == []
    package = assert_installed(node_storage, old, "Alpha", "1.0.0")
    assert list(package.entities.values_list("name", flat=True)) == ["AlphaThing"]
    failed = Operation.objects.get(outcome="failed")
    assert (failed.kind, failed.version, failed.previous_version) == ("upgrade", "1.1.0", "1.0.0")


@pytest.mark.django_db
def test_it_backs_out_when_the_disk_refuses_a_write(node_storage, make_package, pkgdir):
    """A real write failure from the kernel: RLIMIT_FSIZE makes a large file's write fail (EFBIG).

    The limit sits above the SQLite test database's files, which this process also writes.
    """
    database = Path(connection.settings_dict["NAME"]) if connection.vendor == "sqlite" else None
    used = max((p.stat().st_size for p in database.parent.glob(database.name + "*")), default=0) if database else 0
    limit = used + 4 * MiB
    path = build_package(pkgdir, "Big", files={"lib/big.bin": os.urandom(limit + 2 * MiB)})
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        with pytest.raises(Refusal) as refused:
            import_path(path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

    assert refused.value.step == "unzip"
    assert "File too large" in refused.value.reason
    assert_nothing_of(node_storage, "Big")
    assert Operation.objects.get().error_step == "unzip"


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["import", "upgrade"])
def test_it_backs_out_when_the_disk_is_full(tiny_disk, make_package, pkgdir, settings, kind):
    storage = NodeStorage(tiny_disk)
    settings.EXTADMIN_NODE, settings.EXTADMIN_STORAGE = "web", storage.root
    old = make_package("Big", "1.0.0")
    if kind == "upgrade":
        import_path(old)
    before = snapshot(storage)
    path = build_package(pkgdir, "Big", "1.1.0", files={"lib/big.bin": os.urandom(3 * 1024 * 1024)})

    with pytest.raises(Refusal) as refused:
        import_path(path)

    assert refused.value.step == "unzip"
    assert "No space left on device" in refused.value.reason
    assert snapshot(storage) == before
    assert leftovers(storage) == []
    if kind == "upgrade":
        assert_installed(storage, old, "Big", "1.0.0")
    else:
        assert_nothing_of(storage, "Big")
        assert nonzero_rows(ignore=AUDIT) == {}
    # Once there is room again, the same import goes through.
    settings.EXTADMIN_STORAGE = pkgdir.parent / "roomy"
    import_path(path)


@pytest.mark.django_db
def test_it_backs_out_when_the_storage_folder_is_a_file(node_storage, make_package):
    node_storage.root.mkdir(parents=True)
    node_storage.extensions.write_text("not a folder")

    with pytest.raises(Refusal) as refused:
        import_path(make_package("Alpha"))

    assert refused.value.step == "unzip"
    assert "exists" in refused.value.reason.lower()
    assert node_storage.extensions.read_text() == "not a folder"
    assert leftovers(node_storage) == []
    assert nonzero_rows(ignore=AUDIT) == {}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("table", ["nodes_node", "extadmin_archivechunk"])
def test_it_backs_out_when_the_database_connection_is_killed(node_storage, make_package, table):
    path = make_package("Alpha")

    with connection_killed_on(table) as fired, pytest.raises(Refusal) as refused:
        import_path(path)

    assert fired, f"no statement touched {table}"
    assert refused.value.step == ("persist" if table == "nodes_node" else "archive")
    assert_nothing_of(node_storage, "Alpha")
    assert nonzero_rows(ignore=AUDIT) == {}
    assert Operation.objects.get().outcome == "failed"
    # The connection comes back and the next attempt succeeds.
    import_path(path)
    assert_installed(node_storage, path, "Alpha", "1.0.0")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("point", FAULT_POINTS)
def test_it_shows_nothing_when_the_importing_process_dies_and_the_next_attempt_cleans_up(
    node_storage, make_package, point
):
    path = make_package("Alpha")
    env = child_env(EXTADMIN_NODE="web", EXTADMIN_STORAGE=str(node_storage.root), EXTADMIN_FAULTS=f"{point}=kill")

    died = manage("import_extension", str(path), env=env)

    assert died.returncode == -9
    assert nonzero_rows(ignore=AUDIT) == {}
    assert Operation.objects.get().outcome == "running"

    again = manage("import_extension", str(path), env={**env, "EXTADMIN_FAULTS": ""})

    assert again.returncode == 0, again.stderr
    assert_installed(node_storage, path, "Alpha", "1.0.0")
    assert leftovers(node_storage) == []
    assert sorted(Operation.objects.values_list("outcome", flat=True)) == ["interrupted", "succeeded"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("table", ["nodes_node", "extadmin_archivechunk"])
def test_it_keeps_the_previous_version_when_the_connection_dies_during_an_upgrade(node_storage, make_package, table):
    old = make_package("Alpha", "1.0.0")
    import_path(old)
    before = snapshot(node_storage)

    with connection_killed_on(table) as fired, pytest.raises(Refusal):
        import_path(make_package("Alpha", "1.1.0"))

    assert fired
    assert snapshot(node_storage) == before
    assert leftovers(node_storage) == []
    assert_installed(node_storage, old, "Alpha", "1.0.0")


# --- bundles ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_imports_a_bundle_in_dependency_order(node_storage, make_package, pkgdir):
    packages = [
        make_package("Top", depends_on="Middle:1.0.0"),
        make_package("Middle", depends_on="Base:1.0.0"),
        make_package("Base"),
    ]
    bundle = build_bundle(pkgdir, "bundle", packages)

    doc = package_import_files(files=[(bundle, None)], actor=Actor(via="cli"))

    assert [p["name"] for p in doc["packages"]] == ["Base", "Middle", "Top"]
    for path, name in zip(packages, ["Top", "Middle", "Base"], strict=True):
        assert_installed(node_storage, path, name, "1.0.0")
    ops = Operation.objects.order_by("id")
    assert [o.package_name for o in ops] == ["Base", "Middle", "Top"]
    assert all(o.outcome == "succeeded" for o in ops)
    assert bundle_temp_dirs() == set()


@pytest.mark.django_db
@pytest.mark.parametrize("point", FAULT_POINTS)
def test_it_imports_none_of_a_bundle_when_one_package_fails(node_storage, make_package, pkgdir, monkeypatch, point):
    bundle = build_bundle(
        pkgdir, "bundle", [make_package("Top", depends_on="Base:1.0.0"), make_package("Base")]
    )
    monkeypatch.setenv("EXTADMIN_FAULTS", f"{point}=raise")

    with pytest.raises(Refusal):
        package_import_files(files=[(bundle, None)], actor=Actor(via="cli"))

    for name in ("Top", "Base"):
        assert_nothing_of(node_storage, name)
    assert nonzero_rows(ignore=AUDIT) == {}
    assert set(Operation.objects.values_list("outcome", flat=True)) == {"failed"}
    assert bundle_temp_dirs() == set()


@pytest.mark.django_db
def test_it_refuses_a_bundle_with_a_member_whose_dependency_is_missing(node_storage, make_package, pkgdir):
    bundle = build_bundle(pkgdir, "bundle", [make_package("Top", depends_on="Gone:1.0.0"), make_package("Base")])

    with pytest.raises(Refusal, match=r"Gone:1\.0\.0"):
        package_import_files(files=[(bundle, None)], actor=Actor(via="cli"))

    assert nonzero_rows() == {}
    assert not node_storage.extensions.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("label", ["zip slip ../x", "bad CRC", "billion laughs", "symlink"])
def test_it_refuses_a_bundle_holding_a_hostile_package(node_storage, make_package, pkgdir, label):
    hostile = HOSTILE[label][0](pkgdir / "Hostile.zip")
    bundle = build_bundle(pkgdir, "bundle", [make_package("Base"), hostile])

    with pytest.raises(Refusal) as refused:
        package_import_files(files=[(bundle, None)], actor=Actor(via="cli"))

    assert refused.value.step == "validate"
    assert HOSTILE[label][1] in refused.value.reason
    assert nonzero_rows() == {}
    assert not node_storage.root.exists()
    assert bundle_temp_dirs() == set()


@pytest.mark.django_db
def test_it_refuses_a_bundle_holding_the_same_package_twice(node_storage, make_package, pkgdir):
    one = make_package("Twice", "1.0.0")
    two = make_package("Twice", "1.1.0")
    bundle = build_bundle(pkgdir, "bundle", [one, two])

    with pytest.raises(Refusal, match="appears twice"):
        package_import_files(files=[(bundle, None)], actor=Actor(via="cli"))

    assert nonzero_rows() == {}


# --- two imports of the same package at once -----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_lets_one_of_two_concurrent_imports_win_and_refuses_the_other(node_storage, make_package):
    """Both start while the database is held, so both are in flight together: exactly one wins."""
    path = make_package("Alpha")
    env = child_env(EXTADMIN_NODE="web", EXTADMIN_STORAGE=str(node_storage.root))
    cmd = [sys.executable, str(ROOT / "manage.py"), "import_extension", str(path), "--json"]
    with DatabaseWriteLock():
        procs = [
            subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        deadline = time.monotonic() + 60
        while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
    outcomes = [(p.wait(timeout=60), *p.communicate()) for p in procs]

    codes = sorted(code for code, _, _ in outcomes)
    assert codes == [0, 1], outcomes
    (loser_err,) = [err for code, _, err in outcomes if code == 1]
    assert loser_err.startswith("error: lock: another import or sync of Alpha is running on this node")
    assert_installed(node_storage, path, "Alpha", "1.0.0")
    assert list(Operation.objects.values_list("outcome", flat=True)) == ["succeeded"]
    assert leftovers(node_storage) == []


@pytest.mark.django_db(transaction=True)
def test_it_refuses_an_import_while_another_process_holds_the_package(node_storage, make_package):
    path = make_package("Alpha")

    with node_storage.lock("Alpha", wait=False), pytest.raises(Conflict) as refused:
        import_path(path)

    assert refused.value.status == 409
    assert refused.value.step == "lock"
    assert nonzero_rows() == {}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["import", "upgrade"])
def test_it_lets_one_of_two_nodes_importing_the_same_package_win(node_storage, make_package, pkgdir, tmp_path, kind):
    """Two operators on two nodes: the database decides; the loser is refused at persist and backs out."""
    if kind == "upgrade":
        import_path(make_package("Alpha", "1.0.0"))
    version = "1.1.0" if kind == "upgrade" else "1.0.0"
    racers = {
        node: build_package(pkgdir, "Alpha", version, filename=f"Alpha-{node}.zip") for node in ("node-a", "node-b")
    }
    roots = {node: tmp_path / "storage" / node for node in racers}
    with DatabaseWriteLock():
        procs = {
            node: subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "import_extension", str(path), "--json"],
                cwd=ROOT, env=child_env(EXTADMIN_NODE=node, EXTADMIN_STORAGE=str(roots[node])),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for node, path in racers.items()
        }
        # Both have validated (the package is not in the database yet) once they hold their node's lock.
        deadline = time.monotonic() + 60
        while not all((r / ".extadmin" / "locks").exists() for r in roots.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    outcomes = {node: (p.wait(timeout=120), *p.communicate()) for node, p in procs.items()}

    assert sorted(code for code, _, _ in outcomes.values()) == [0, 1], outcomes
    (winner,) = [node for node, (code, _, _) in outcomes.items() if code == 0]
    (loser,) = [node for node, (code, _, _) in outcomes.items() if code == 1]
    assert outcomes[loser][2].startswith(
        "error: persist: another import" + (" or removal" if kind == "upgrade" else "") + " of Alpha finished first"
    ), outcomes[loser][2]
    package = ExtensionPackage.objects.get(name="Alpha")
    assert (package.version, package.sha256, package.imported_on_node) == (
        version, sha256_of(racers[winner]), winner,
    )
    assert package.archive.sha256 == package.sha256
    assert NodeStorage(roots[winner]).read_chk("Alpha") == package.sha256
    assert not NodeStorage(roots[loser]).package_dir("Alpha").exists()
    assert leftovers(NodeStorage(roots[loser])) == []
    failed = Operation.objects.get(outcome="failed")
    assert (failed.node, failed.error_step) == (loser, "persist")


LONG_FIELDS = {
    "packageVersion": dict(version=".".join(["123456789012345678"] * 4)),
    "vendor": dict(vendor="v" * 513),
    "minimumThingWorxVersion": dict(minimum="9." + "0" * 70),
    "entity name": dict(entities='  <Things>\n    <Thing name="' + "n" * 513 + '"/>\n  </Things>\n'),
    "entity type": dict(entities="  <Things>\n    <" + "T" * 129 + ' name="x"/>\n  </Things>\n'),
}


@pytest.mark.django_db
@pytest.mark.parametrize("field", list(LONG_FIELDS))
def test_it_refuses_metadata_longer_than_the_database_keeps_before_writing_anything(
    node_storage, pkgdir, field
):
    """PostgreSQL would refuse the row half-way through the import and SQLite would keep it whole:
    either way the operator must hear it from validation, with nothing written."""
    spec = LONG_FIELDS[field]
    text = metadata_xml("Long", spec.get("version", "1.0.0"), vendor=spec.get("vendor", "x"),
                        entities=spec.get("entities", ""))
    if "minimum" in spec:
        text = text.replace('minimumThingWorxVersion="9.0.0"', f'minimumThingWorxVersion="{spec["minimum"]}"')
    path = build_package(pkgdir, "Long", metadata=text)

    with pytest.raises(Refusal) as refused:
        import_path(path)

    assert refused.value.step == "validate"
    assert field.split()[-1] in refused.value.reason and "longer than" in refused.value.reason
    assert nonzero_rows() == {}
    assert not node_storage.root.exists()


@pytest.mark.django_db
def test_it_unpacks_a_bundle_of_many_members_in_linear_time(node_storage, pkgdir, settings):
    """A hostile bundle of many small members is refused quickly, not after n² work (1000 took 14 s)."""
    import zipfile

    path = pkgdir / "many.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(2000):
            zf.writestr(f"m{i:05d}.zip", b"not a zip")
    started = time.monotonic()

    with pytest.raises(Refusal, match="not a zip"):
        package_import_files(files=[(path, None)], actor=Actor(via="cli"))

    assert time.monotonic() - started < 10
    assert nonzero_rows() == {}
    assert bundle_temp_dirs() == set()


@pytest.mark.django_db
def test_it_imports_a_bundle_whose_members_sit_in_folders(node_storage, make_package, pkgdir):
    import zipfile

    base, top = make_package("Base"), make_package("Top", depends_on="Base:1.0.0")
    bundle = pkgdir / "nested.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        zf.writestr("extensions/", b"")
        zf.write(top, "extensions/top/Top.zip")
        zf.write(base, "extensions/Base.zip")

    doc = package_import_files(files=[(bundle, None)], actor=Actor(via="cli"))

    assert [p["name"] for p in doc["packages"]] == ["Base", "Top"]
    assert_installed(node_storage, top, "Top", "1.0.0")


@pytest.mark.django_db
@pytest.mark.parametrize("what", ["link", "file"])
def test_it_replaces_a_stray_link_or_file_where_the_folder_belongs_without_following_it(
    node_storage, make_package, tmp_path, what
):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    node_storage.extensions.mkdir(parents=True)
    if what == "link":
        node_storage.package_dir("Alpha").symlink_to(outside)
    else:
        node_storage.package_dir("Alpha").write_text("stray")
    path = make_package("Alpha")

    import_path(path)

    assert (outside / "precious.txt").read_text() == "keep me"
    assert not node_storage.package_dir("Alpha").is_symlink()
    assert_installed(node_storage, path, "Alpha", "1.0.0")
    assert leftovers(node_storage) == []

