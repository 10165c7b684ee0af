from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from zipcraft import info, make_zip, package_zip

from extadmin.packaging import Limits, Refusal, validate_package

pytestmark = pytest.mark.dbless  # no database, no broker: .ci/run runs it once

LIMITS = Limits()


def refused(path: Path) -> str:
    with pytest.raises(Refusal) as caught:
        validate_package(path, limits=LIMITS)
    assert caught.value.step == "validate"
    return caught.value.reason


def test_it_validates_a_realistic_package(tmp_path: Path) -> None:
    package = validate_package(package_zip(tmp_path / "p.zip"), limits=LIMITS)
    assert package.metadata.name == "MqttBridge"
    assert "lib/common/mqttbridge.jar" in package.plan.names()


def test_it_refuses_a_package_without_metadata(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "p.zip", [("lib/x.jar", b"x"), ("sub/metadata.xml", b"<Entities/>")])
    assert refused(path) == "metadata.xml is missing at the root of the package"


def test_it_refuses_a_zip_that_is_unsafe_before_reading_metadata(tmp_path: Path) -> None:
    assert "escapes the package folder" in refused(package_zip(tmp_path / "p.zip", [("../x", b"x")]))


def test_it_refuses_broken_metadata(tmp_path: Path) -> None:
    assert refused(package_zip(tmp_path / "p.zip", metadata=b"<Entities>")).startswith("metadata.xml: ")


def test_it_refuses_oversized_metadata(tmp_path: Path) -> None:
    big = b"<Entities><!--" + b" " * (8 * 1024 * 1024) + b"--></Entities>"
    path = make_zip(tmp_path / "p.zip", [(info("metadata.xml", compress_type=zipfile.ZIP_STORED), big)])
    assert refused(path) == "entry 'metadata.xml' is larger than the limit of 8388608 bytes"


@pytest.mark.parametrize("name", ["MqttBridge.chk", "mqttbridge.CHK", "MqttBridge.chk/", "MqttBridge.chk/x"])
def test_it_refuses_an_entry_colliding_with_the_marker_file(tmp_path: Path, name: str) -> None:
    reason = refused(package_zip(tmp_path / "p.zip", [(name, b"" if name.endswith("/") else b"x")]))
    assert reason.startswith(f"entry '{name.rstrip('/')}' collides with the marker file 'MqttBridge.chk'")


def test_it_allows_a_marker_like_name_deeper_down(tmp_path: Path) -> None:
    package = validate_package(package_zip(tmp_path / "p.zip", [("lib/MqttBridge.chk", b"x")]), limits=LIMITS)
    assert "lib/MqttBridge.chk" in package.plan.names()


def test_it_refuses_more_entities_than_the_limit_naming_both(tmp_path: Path) -> None:
    things = "".join(f'<Thing name="T{i}"/>' for i in range(6))
    xml = (
        '<Entities><ExtensionPackages><ExtensionPackage name="Many" packageVersion="1.0.0"/></ExtensionPackages>'
        f"<Things>{things}</Things></Entities>"
    ).encode()
    path = package_zip(tmp_path / "p.zip", metadata=xml)
    assert len(validate_package(path, limits=Limits(max_entities=6)).metadata.entities) == 6
    with pytest.raises(Refusal) as caught:
        validate_package(path, limits=Limits(max_entities=5))
    assert caught.value.reason == "metadata.xml declares 6 entities, more than the limit of 5"
