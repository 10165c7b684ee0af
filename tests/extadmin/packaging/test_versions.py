from __future__ import annotations

import pytest

from extadmin.packaging import Refusal, Version, parse_version

pytestmark = pytest.mark.dbless  # no database, no broker: .ci/run runs it once


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("1.0.5", (1, 0, 5)),
        ("2.2", (2, 2)),
        ("0.20201103.083645", (0, 20201103, 83645)),
        ("7", (7,)),
        ("1.2.3.4", (1, 2, 3, 4)),
        ("01.002.0003", (1, 2, 3)),
    ],
)
def test_it_parses_versions_real_packages_use(text: str, parts: tuple[int, ...]) -> None:
    version = parse_version(text)
    assert version.parts == parts
    assert version.text == text
    assert str(version) == text


@pytest.mark.parametrize(
    "text", ["", "1.x", "1.0-SNAPSHOT", "1.2.3.4.5", "1..2", ".1", "1.", "-1.0", "+1", " 1.0", "١.٢", "1" * 19]
)
def test_it_refuses_versions_that_cannot_be_ordered(text: str) -> None:
    with pytest.raises(Refusal) as caught:
        parse_version(text)
    assert caught.value.step == "validate"
    assert caught.value.reason.endswith("cannot be ordered (expected major.minor.patch)")


def test_it_names_the_version_in_the_refusal() -> None:
    with pytest.raises(Refusal) as caught:
        parse_version("1.x")
    assert caught.value.reason == "packageVersion '1.x' cannot be ordered (expected major.minor.patch)"


def test_it_orders_numerically_not_as_text() -> None:
    assert parse_version("1.0.10") > parse_version("1.0.9")
    assert parse_version("10.0") > parse_version("9.99.99")
    assert parse_version("0.20201103.083645") < parse_version("0.20210101.000000")


def test_it_pads_missing_parts_with_zeros() -> None:
    assert parse_version("2.2") == parse_version("2.2.0")
    assert parse_version("2.2") <= parse_version("2.2.0") <= parse_version("2.2")
    assert parse_version("2.2") < parse_version("2.2.1")
    assert hash(parse_version("2")) == hash(parse_version("2.0.0.0"))
    assert len({parse_version("1.0"), parse_version("1.0.0"), parse_version("1")}) == 1


def test_it_sorts_a_mixed_list() -> None:
    texts = ["1.10.0", "1.2", "1.2.1", "0.9.9.9", "1.9"]
    assert [v.text for v in sorted(parse_version(t) for t in texts)] == ["0.9.9.9", "1.2", "1.2.1", "1.9", "1.10.0"]


def test_it_does_not_compare_with_other_types() -> None:
    assert parse_version("1.0") != "1.0"
    with pytest.raises(TypeError):
        _ = parse_version("1.0") < "1.0"  # type: ignore[operator]
    assert isinstance(parse_version("1.0"), Version)
