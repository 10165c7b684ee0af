"""The console's pages for people who do not see colour or a mouse (issue 13, item 5), read from the
markup and the stylesheet: real tables, a word in every cell, polite live regions, a skip link, and
every colour pair of console.css at a contrast of at least 4.5:1. axe-core checks the rendered pages
too (tests/browser/test_accessibility.py)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.test import Client

from tests.processes import ROOT
from tests.web.console_pages import PAGES

pytestmark = pytest.mark.django_db

CSS = re.sub(r"/\*.*?\*/", "", (ROOT / "static" / "extadmin" / "console.css").read_text(), flags=re.S)


class Tree(HTMLParser):
    """Just enough of a DOM: each element's tag, attributes, ancestors and text."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[dict] = []
        self.elements: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = {"tag": tag, "attrs": dict(attrs), "parents": [e["tag"] for e in self.stack],
              "roles": [e["attrs"].get("role") for e in self.stack], "text": []}
        self.elements.append(el)
        if tag not in self.VOID:
            self.stack.append(el)

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break

    def handle_data(self, data: str) -> None:
        for el in self.stack:
            el["text"].append(data)

    @classmethod
    def of(cls, html: str) -> list[dict]:
        tree = cls()
        tree.feed(html)
        for el in tree.elements:
            el["text"] = " ".join("".join(el["text"]).split())
        return tree.elements


def test_every_table_header_says_what_it_heads(admin_client: Client, cluster: None) -> None:
    for url in PAGES:
        for el in Tree.of(admin_client.get(url).content.decode()):
            if el["tag"] != "th":
                continue
            want = "col" if "thead" in el["parents"] else "row"
            assert el["attrs"].get("scope") == want, f"{url}: <th> {el['text']!r} without scope={want}"


def test_the_grid_is_a_captioned_table_in_a_named_scroll_box(admin_client: Client, cluster: None) -> None:
    elements = Tree.of(admin_client.get("/").content.decode())
    captions = [e for e in elements if e["tag"] == "caption"]
    assert captions and "package" in captions[0]["text"] and "node" in captions[0]["text"]
    box = next(e for e in elements if "scroll" in e["attrs"].get("class", "").split())
    attrs = box["attrs"]
    assert attrs.get("role") == "region" and attrs.get("aria-label") and attrs.get("tabindex") == "0"


def test_every_cell_says_its_state_in_words(admin_client: Client, cluster: None) -> None:
    cells = [e for e in Tree.of(admin_client.get("/").content.decode())
             if e["tag"] == "td" and "cell" in e["attrs"].get("class", "").split()]
    assert {c["attrs"]["data-state"] for c in cells} >= {"installed", "failed", "pending", "offline", "removing"}
    for c in cells:
        assert c["attrs"]["data-state"] in c["text"], f"a {c['attrs']['data-state']} cell says only {c['text']!r}"


def test_changing_counts_are_marked_for_the_one_polite_live_region(admin_client: Client, cluster: None) -> None:
    """Parts are replaced as they change; the live region that says so stays (console.js fills it)."""
    def marked(url: str, words: str) -> None:
        elements = Tree.of(admin_client.get(url).content.decode())
        live = [e for e in elements if e["attrs"].get("id") == "live-announcer"]
        assert live and live[0]["attrs"].get("role") == "status" and live[0]["attrs"].get("aria-live") == "polite"
        assert "main" not in live[0]["parents"]  # outside every part that is replaced
        counts = [e for e in elements if "data-announce" in e["attrs"] and words in e["text"]]
        assert counts, f"{url}: {words!r} is not marked data-announce"
        assert "updated" not in counts[0]["text"]  # the clock of each refresh is not announced

    marked("/", "packages converged")
    marked("/extensions/Base/", "not converged")
    marked("/nodes/n2/", "online")


def test_a_skip_link_comes_first_and_leads_to_the_content(admin_client: Client, cluster: None) -> None:
    for url in PAGES:
        elements = Tree.of(admin_client.get(url).content.decode())
        body = [e for e in elements if "body" in e["parents"]]
        assert body[0]["tag"] == "a" and body[0]["attrs"]["href"] == "#main" and body[0]["text"] == "Skip to content"
        main = next(e for e in elements if e["tag"] == "main")
        assert main["attrs"].get("id") == "main" and main["attrs"].get("tabindex") == "-1"
    assert re.search(r":focus-visible\s*\{[^}]*outline:\s*3px solid", CSS)


# --- contrast ---------------------------------------------------------------------------------------


def _variables() -> dict[str, str]:
    root = re.search(r":root\s*\{([^}]*)\}", CSS)
    assert root is not None
    return dict(re.findall(r"(--[\w-]+):\s*(#[0-9a-fA-F]{3,6})", root.group(1)))


def _hex(value: str, variables: dict[str, str]) -> str | None:
    value = value.strip()
    m = re.fullmatch(r"var\((--[\w-]+)\)", value)
    if m:
        return variables.get(m.group(1))
    return value if re.fullmatch(r"#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}", value) else None


def _luminance(colour: str) -> float:
    h = colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    channels = [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    hi, lo = sorted([_luminance(a), _luminance(b)], reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _rules() -> dict[str, dict[str, str]]:
    rules: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", re.sub(r"@media[^{]*\{", "", CSS)):
        declarations = dict((k.strip(), v.strip()) for k, v in re.findall(r"([\w-]+)\s*:\s*([^;]+)", body))
        for s in selectors.split(","):
            rules.setdefault(" ".join(s.split()), {}).update(declarations)
    return rules


def _colour(rule: dict[str, str], prop: str, variables: dict[str, str]) -> str | None:
    value = rule.get(prop) or (rule.get("background") if prop == "background-color" else None)
    return _hex(value.split()[0], variables) if value else None


def test_every_colour_pair_in_the_stylesheet_has_a_contrast_of_at_least_4_5() -> None:
    variables, rules = _variables(), _rules()
    pairs: list[tuple[str, str, str]] = []
    for selector, rule in rules.items():
        fg, bg = _colour(rule, "color", variables), _colour(rule, "background-color", variables)
        if fg and bg:
            pairs.append((selector, fg, bg))
    # Text drawn on a background another rule paints: the header, muted words on every badge's colour.
    header = _colour(rules["header.top"], "background-color", variables)
    assert header is not None
    for selector in ("header.top", "header.top a", "header.top .who", "button.link", "header.top .brand"):
        fg = _colour(rules[selector], "color", variables)
        assert fg is not None, selector
        pairs.append((f"{selector} on the header", fg, header))
    for name in ("bg", "card", "idle-bg", "ok-bg", "info-bg", "warn-bg", "bad-bg"):
        pairs.append((f".muted on --{name}", variables["--muted"], variables[f"--{name}"]))
        pairs.append((f"a on --{name}", variables["--accent"], variables[f"--{name}"]))
    assert len(pairs) > 25
    poor = [f"{s}: {fg} on {bg} is {contrast(fg, bg):.2f}:1" for s, fg, bg in pairs if contrast(fg, bg) < 4.5]
    assert not poor, "\n".join(poor)
