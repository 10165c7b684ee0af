"""The one rule for a safe name: package names, dependency names and node names become folder names.

Its own module, below ``metadata`` and ``dependencies``, which both build on it.
"""

from __future__ import annotations

import re

from extadmin.packaging.errors import Refusal, shown

# A name becomes a folder name on every node, so it must be a plain, portable one.
_SAFE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def is_safe_name(name: str) -> bool:
    """True when ``name`` can be used as a folder name on any node."""
    return _SAFE_NAME_RE.fullmatch(name) is not None and not name.endswith(".") and ".." not in name


NODE_NAME_RULE = "letters, digits, '_', '.', '-'; at most 128; no '..'; not ending in '.'"


def node_name_check(*, name: str, setting: str = "") -> None:
    """Node names follow the package names' rule. Every console page links to ``/nodes/<name>/``:
    a name with a '/' (or none at all) cannot be linked, and a NUL cannot even be stored.

    ``setting``: the setting the name came from, so the operator knows what to change.
    """
    if not is_safe_name(name):
        source = f" (the setting {setting})" if setting else ""
        raise Refusal("start", f"node name '{shown(name)}'{source} is not a safe name ({NODE_NAME_RULE})")
