"""Log lines an operator's tools can read, and never a credential in them.

``EXTADMIN_LOG_FORMAT=json`` makes every line one JSON object (``JsonFormatter``); the default stays
the readable text line. Two filters sit on every handler (settings.LOGGING, gunicorn's handlers
through ``extadmin.gunicorn_logging``):

- ``ContextFilter`` adds the node, package and operation id the line is about. They are carried in a
  context variable: ``logged_as`` sets them around an import, a removal or a sync, and
  ``OperationRecorder.start`` adds the operation's id. The agent sets its node for the whole process.
- ``RedactingFilter`` masks what must never be written: the password of ``scheme://user:password@``,
  the value of an ``Authorization`` header, of ``token=``/``password=``/``secret=``, and every value
  of a secret setting (``DJANGO_SECRET_KEY``, ``EXTADMIN_METRICS_TOKEN``, the database's password…)
  wherever it shows up, the exception text included.

The standard library has the job: a JSON line is a dozen fields and ``json.dumps``, and the same
module must run in gunicorn's master process, before (and without) Django. So no python-json-logger.
This module imports nothing of Django at module level but ``django.conf.settings``, which is lazy.
"""
from __future__ import annotations

import functools
import io
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import ParamSpec, TextIO, TypeVar
from urllib.parse import quote, unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

P = ParamSpec("P")
R = TypeVar("R")

FIELDS = ("node", "package", "operation_id")
MASK = "***"
# Shorter values would mask ordinary words and numbers in every line; a short password in a URL or
# after ``password=`` is still masked by the patterns below.
MIN_SECRET_LENGTH = 6

_context: ContextVar[dict[str, str] | None] = ContextVar("extadmin_log_context", default=None)
_process: dict[str, str] = {}


# --- context ------------------------------------------------------------------------------------
@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Lines logged inside carry ``fields`` (node, package, operation_id); empty values are left out."""
    given = {k: str(v) for k, v in fields.items() if v not in (None, "")}
    token = _context.set({**(_context.get() or {}), **given})
    try:
        yield
    finally:
        _context.reset(token)


def logged_as(**arguments: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run the function inside ``log_context(field=<its keyword argument>)``: ``@logged_as(node="node_name")``."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with log_context(**{field: kwargs.get(name) for field, name in arguments.items()}):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


def log_context_add(**fields: object) -> None:
    """Add to the innermost ``log_context`` (a bundle's packages and operations are listed together);
    outside one, nothing: the next unrelated line must not carry them."""
    current = _context.get()
    if current is None:
        return
    for key, value in fields.items():
        values = current[key].split(",") if current.get(key) else []
        if str(value) not in values:
            values.append(str(value))
        current[key] = ",".join(values)


def log_context_default(**fields: object) -> None:
    """This process's own fields, in every thread (the agent's node: its heartbeat, its worker)."""
    _process.update({k: str(v) for k, v in fields.items()})


def _default_node() -> str:
    if settings.configured:
        return str(getattr(settings, "EXTADMIN_NODE", ""))
    return os.environ.get("EXTADMIN_NODE", "")


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        fields = {"node": _default_node(), **_process, **(_context.get() or {})}
        for key in FIELDS:
            if not getattr(record, key, ""):
                setattr(record, key, fields.get(key, ""))
        return True


# --- redaction ----------------------------------------------------------------------------------
# scheme://user:PASSWORD@host — the password runs to the last "@" before the next URL of a
# failover list (";") or whitespace, as urllib splits it.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s;]*:)[^\s;]*@", re.IGNORECASE)
_AUTHORIZATION = re.compile(
    r"(?P<head>authorization['\"]?\s*[:=]\s*['\"]?(?:(?:bearer|token|basic|digest)\s+)?)[^\s'\",;]+",
    re.IGNORECASE,
)
_SECRET_WORDS = r"(?:[a-z0-9_]*(?:password|passwd|pwd|token|secret|api_?key|access_?key|private_?key))"  # noqa: S105 (names, not a password)
# key=value (query strings, libpq conninfo) and "key": "value" (JSON, reprs of dicts)
_SECRET_PAIR = re.compile(
    rf"(?P<head>\b{_SECRET_WORDS}(?:=|['\"]?\s*:\s*['\"]))(?P<value>[^\s&'\";,]+)", re.IGNORECASE
)
_SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|_KEY$|^KEY$", re.IGNORECASE)


def mask_url_passwords(text: str, substitute: str = MASK) -> str:
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{substitute}@", text)


def redact(text: str, *, secrets: Iterable[str] | None = None, substitute: str = MASK) -> str:
    """``text`` with every credential masked (module docstring); ``secrets``: values known to be secret
    (by default this process's, ``secret_values()``)."""
    for value in secret_values() if secrets is None else secrets:
        if value:
            text = text.replace(value, substitute)
    text = mask_url_passwords(text, substitute)
    text = _AUTHORIZATION.sub(lambda m: f"{m['head']}{substitute}", text)
    return _SECRET_PAIR.sub(lambda m: f"{m['head']}{substitute}", text)


def secret_values() -> tuple[str, ...]:
    """The values this process holds that are secret: settings and environment variables named like a
    secret, and the passwords of URLs among them (``DATABASE_URL``, ``CELERY_BROKER_URL``…).

    Worked out again once Django's settings are configured (gunicorn's master never configures them).
    """
    return _secret_values(settings.configured)


@functools.lru_cache(maxsize=2)
def _secret_values(configured: bool) -> tuple[str, ...]:
    found: set[str] = set()
    for name, value in os.environ.items():
        found |= _secrets_of(name, value)
    if configured:
        for name in dir(settings):
            if name.isupper():
                found |= _secrets_of(name, getattr(settings, name, None))
        for db in settings.DATABASES.values():
            found |= _secrets_of("PASSWORD", db.get("PASSWORD"))
    # Longest first, so that a secret containing another is masked whole; also as URLs quote them.
    values = {v for s in found if len(s) >= MIN_SECRET_LENGTH for v in (s, quote(s, safe=""))}
    return tuple(sorted(values, key=len, reverse=True))


def _secrets_of(name: str, value: object) -> set[str]:
    if isinstance(value, list | tuple):
        return {s for item in value for s in _secrets_of(name, item)}
    if not isinstance(value, str) or not value:
        return set()
    found = {value} if _SECRET_NAME.search(name) else set()
    for url in value.split(";"):  # a broker's failover list
        try:
            password = urlsplit(url.strip()).password
        except ValueError:
            continue
        if password:
            found |= {password, unquote(password)}
    return found


_EXCEPTIONS = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Masks the message, its arguments and the exception text before any formatter sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit: logging reports that itself when it formats
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _EXCEPTIONS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# --- formats ------------------------------------------------------------------------------------
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, node, package, operation_id,
    message, and ``exception`` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            **{key: getattr(record, key, "") for key in FIELDS},
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def log_format() -> str:
    """``json`` or ``text`` (the default), from ``EXTADMIN_LOG_FORMAT``."""
    value = os.environ.get("EXTADMIN_LOG_FORMAT", "text").strip().lower() or "text"
    if value not in {"json", "text"}:
        # A typo must not silently mean text: the operator's log shipper expects JSON.
        raise ImproperlyConfigured(f"EXTADMIN_LOG_FORMAT must be 'json' or 'text', not {value!r}")
    return value


def formatter() -> logging.Formatter:
    return JsonFormatter() if log_format() == "json" else logging.Formatter(TEXT_FORMAT)


def logging_config(level: str) -> dict[str, object]:
    """settings.LOGGING: one console handler (stderr) with both filters, in the chosen format."""
    if log_format() == "json":
        logging.captureWarnings(True)  # a Python warning is a line of the log too, not raw text on stderr
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "extadmin.logs.ContextFilter"},
            "redact": {"()": "extadmin.logs.RedactingFilter"},
        },
        "formatters": {"chosen": {"()": "extadmin.logs.formatter"}},
        "handlers": {
            "console": {"()": "extadmin.logs.console_handler", "formatter": "chosen", "filters": ["context", "redact"]},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            # Django's own handlers for these (a plain console one while DEBUG is on, mails to
            # admins) are replaced: their lines go to the root's handler like every other.
            "django": {"level": "INFO"},
            "django.server": {"level": "INFO", "propagate": True},
            "py.warnings": {"level": "WARNING"},
        },
    }


class LinesToLog(io.TextIOBase):
    """A stream whose every line becomes a log record: what a library prints instead of logging.

    A handler made after the switch (Celery's Django fix-up sets Django up again) writes to this very
    stream: what is written while a line is being logged goes to the stream it replaced."""

    def __init__(self, logger: str, level: int, original: TextIO) -> None:
        super().__init__()
        self.logger, self.level, self.original = logging.getLogger(logger), level, original
        self.pending, self.busy = "", threading.local()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if getattr(self.busy, "on", False):
            return self.original.write(text)
        self.pending += text
        self.busy.on = True
        try:
            while "\n" in self.pending:
                line, self.pending = self.pending.split("\n", 1)
                if line.strip():
                    self.logger.log(self.level, line)
        finally:
            self.busy.on = False
        return len(text)

    def flush(self) -> None:
        self.original.flush()

    def fileno(self) -> int:
        # Celery writes its shutdown notice straight to the descriptor when there is one (``safe_say``):
        # None makes it skip that raw line; the agent logs its shutdown itself.
        return None  # type: ignore[return-value]


def stray_output_to_log() -> bool:
    """With ``EXTADMIN_LOG_FORMAT=json``, make what is printed to stdout and stderr (Celery's shutdown
    notice goes to ``sys.__stdout__``, a thread's uncaught exception to ``sys.stderr``) JSON lines too.

    The log's own handler keeps the stream it was made with, so its lines are not captured again.
    Returns whether it did (text stays as it is)."""
    if log_format() != "json":
        return False
    if isinstance(sys.stderr, LinesToLog):
        return True
    sys.stdout = LinesToLog("stdout", logging.INFO, sys.stdout)
    sys.stderr = LinesToLog("stderr", logging.ERROR, sys.stderr)
    # Celery writes its notices to the original streams, past sys.stdout: those too.
    sys.__stdout__, sys.__stderr__ = sys.stdout, sys.stderr  # type: ignore[misc, assignment]
    # An uncaught exception is one line with its traceback, not a line per frame.
    sys.excepthook = _log_uncaught
    threading.excepthook = lambda a: _log_uncaught(a.exc_type, a.exc_value, a.exc_traceback)  # type: ignore[arg-type]
    return True


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("uncaught").critical("uncaught %s", kind.__name__, exc_info=(kind, value, tb))


def console_handler() -> logging.Handler:
    """A handler on this process's stderr: the real one, also when it is made after ``stray_output_to_log``."""
    stream = sys.stderr
    return logging.StreamHandler(stream.original if isinstance(stream, LinesToLog) else stream)


def filtered(handler: logging.Handler) -> logging.Handler:
    """``handler`` in the chosen format with both filters (gunicorn's own handlers)."""
    handler.setFormatter(formatter())
    for f in (ContextFilter(), RedactingFilter()):
        handler.addFilter(f)
    return handler
