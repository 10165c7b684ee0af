"""The one rule for a safe name: package names, dependency names and node names become folder names.

Its own module, below ``metadata`` and ``dependencies``, which both build on it.
"""

from __future__ import annotations

import re

# A name becomes a folder name on every node, so it must be a plain, portable one.
_SAFE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def is_safe_name(name: str) -> bool:
    """True when ``name`` can be used as a folder name on any node."""
    return _SAFE_NAME_RE.fullmatch(name) is not None and not name.endswith(".") and ".." not in name
