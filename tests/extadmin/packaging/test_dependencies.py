from __future__ import annotations

import pytest

from extadmin.packaging import Dependency, Refusal, order_by_dependencies, parse_depends_on

pytestmark = pytest.mark.dbless  # no database, no broker: .ci/run runs it once


@pytest.mark.parametrize(
    "raw",
    [
        "A:1.0.0;B:2.1.0",
        "A:1.0.0,B:2.1.0",
        " A:1.0.0 ; B:2.1.0 ",
        "A : 1.0.0, B:2.1.0;",
        ";A:1.0.0;;B:2.1.0",
    ],
)
def test_it_parses_both_separators_and_spaces(raw: str) -> None:
    assert parse_depends_on(raw) == (Dependency("A", "1.0.0"), Dependency("B", "2.1.0"))


@pytest.mark.parametrize("raw", ["", "   ", ";", " , "])
def test_it_reads_empty_text_as_no_dependencies(raw: str) -> None:
    assert parse_depends_on(raw) == ()


@pytest.mark.parametrize("item", ["A", "A:", ":1.0", "A:1.x", "A:1:2", "a b:1.0", "../A:1.0", "A:1.0-SNAPSHOT"])
def test_it_refuses_a_malformed_item_naming_it(item: str) -> None:
    with pytest.raises(Refusal) as caught:
        parse_depends_on(f"Good:1.0.0;{item}")
    assert caught.value.step == "validate"
    assert caught.value.reason == f"dependsOn item '{item}' is malformed (expected Name:major.minor.patch)"


def test_it_refuses_a_dependency_named_twice() -> None:
    with pytest.raises(Refusal, match="dependsOn names 'A' more than once"):
        parse_depends_on("A:1.0.0;A:2.0.0")


def test_it_puts_dependencies_first() -> None:
    assert order_by_dependencies({"App": ["Lib"], "Lib": ["Core"], "Core": []}) == ["Core", "Lib", "App"]


def test_it_orders_peers_alphabetically() -> None:
    items = {"Z": [], "M": ["Z"], "A": ["Z"], "B": [], "Top": ["M", "A", "B"]}
    assert order_by_dependencies(items) == ["B", "Z", "A", "M", "Top"]


def test_it_is_stable_whatever_the_input_order() -> None:
    items = {"C": ["A"], "B": ["A"], "A": [], "D": []}
    reordered = dict(reversed(list(items.items())))
    assert order_by_dependencies(items) == order_by_dependencies(reordered) == ["A", "B", "C", "D"]


def test_it_ignores_dependencies_that_are_already_installed() -> None:
    assert order_by_dependencies({"MqttBridge": ["CommonUtils", "JsonTools"], "JsonTools": []}) == [
        "JsonTools",
        "MqttBridge",
    ]


def test_it_accepts_an_empty_mapping() -> None:
    assert order_by_dependencies({}) == []


def test_it_names_a_cycle() -> None:
    with pytest.raises(Refusal) as caught:
        order_by_dependencies({"A": ["B"], "B": ["A"], "C": []})
    assert caught.value.as_dict() == {"step": "validate", "reason": "dependency cycle: A → B → A"}


def test_it_names_a_longer_cycle_and_not_its_dependents() -> None:
    items = {"App": ["X"], "X": ["Y"], "Y": ["Z"], "Z": ["X"], "Free": []}
    with pytest.raises(Refusal, match=r"^validate: dependency cycle: X → Y → Z → X$"):
        order_by_dependencies(items)


def test_it_names_a_self_dependency_as_a_cycle() -> None:
    with pytest.raises(Refusal, match=r"^validate: dependency cycle: A → A$"):
        order_by_dependencies({"A": ["A"]})
