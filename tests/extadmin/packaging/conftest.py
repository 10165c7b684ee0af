"""Make ``extadmin`` importable when these tests run on their own (``-p no:django``).

pytest-django puts the project root on sys.path by finding manage.py; without it nothing does,
because these test folders are not packages (an ``__init__.py`` here would shadow the real
``packaging`` and ``extadmin`` modules).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
