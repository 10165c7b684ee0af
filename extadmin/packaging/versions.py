"""Package versions: dotted non-negative integers that can be ordered.

Shipped packages carry ``1.0.5``, ``2.2`` and ``0.20201103.083645``; all of them are accepted.
Anything that cannot be ordered (``1.x``, ``1.0-SNAPSHOT``) is refused, because the importer must
be able to tell an upgrade from a downgrade.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from extadmin.packaging.errors import Refusal, shown

# ASCII digits only: ``\d`` would also accept other scripts' digits. Each part is capped so that a
# hostile version cannot make int() chew on thousands of digits.
_VERSION_RE = re.compile(r"[0-9]{1,18}(?:\.[0-9]{1,18}){0,3}")


@total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A parsed version; ``2.2`` and ``2.2.0`` are equal (and hash alike) for ordering."""

    parts: tuple[int, ...]
    text: str

    def _key(self) -> tuple[int, ...]:
        # Trailing zeros carry no ordering information; dropping them makes 2.2 == 2.2.0 and
        # keeps __eq__, __lt__ and __hash__ consistent with each other.
        parts = list(self.parts)
        while parts and parts[-1] == 0:
            parts.pop()
        return tuple(parts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.text


def is_orderable(text: str) -> bool:
    """True when ``text`` is 1 to 4 dotted non-negative integers."""
    return _VERSION_RE.fullmatch(text) is not None


def parse_version(text: str) -> Version:
    """Parse a ``packageVersion``; refuse one that cannot be ordered."""
    if not is_orderable(text):
        raise Refusal("validate", f"packageVersion '{shown(text)}' cannot be ordered (expected major.minor.patch)")
    return Version(parts=tuple(int(part) for part in text.split(".")), text=text)
