from __future__ import annotations

from tests.semantics.support import api, imported, operator, packages, reader

__all__ = ["api", "imported", "operator", "packages", "reader"]
