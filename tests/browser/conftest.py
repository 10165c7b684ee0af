from __future__ import annotations

import os

# Playwright's sync API keeps an event loop running in the test's thread; Django then refuses ORM
# calls from it. The test code is synchronous all the same, so this check does not apply here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
