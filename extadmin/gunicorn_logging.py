"""gunicorn's own lines (its error log and the access log) as extadmin writes its lines.

``gunicorn --logger-class extadmin.gunicorn_logging.GunicornLogger`` (scripts/run, the Dockerfile):
gunicorn keeps its handlers and levels; each handler gets ``EXTADMIN_LOG_FORMAT``'s formatter and the
context and redacting filters (``extadmin.logs``). This runs in gunicorn's master too, where Django
is not set up: ``extadmin.logs`` needs no configured settings.
"""
from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from extadmin.logs import filtered


class GunicornLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)  # new handlers on every (re)configuration: filters are never stacked
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                filtered(handler)
