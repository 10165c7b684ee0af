"""Settings, read from the environment.

With no environment set, extadmin runs on one machine with no server: SQLite and a filesystem
broker under ``var/``. ``DATABASE_URL`` and ``CELERY_BROKER_URL`` move it onto PostgreSQL and
Redis/RabbitMQ. ``EXTADMIN_PRODUCTION=1`` turns on the production hardening and makes the secrets
mandatory.
"""
from __future__ import annotations

import os
import secrets
import shlex
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from extadmin.logs import logging_config
from extadmin.packaging import Refusal
from extadmin.packaging.policy import PolicyError, parse_import_policy
from extadmin.sso.config import oidc_config
from rollouts.policy import parse_rollout_setting

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("EXTADMIN_VAR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def local_secret_key(path: Path) -> str:
    """This installation's own key, generated on first use and kept (0600) so sessions survive restarts.

    The web workers and agents of ``scripts/run`` may start together: the key is written aside and
    linked into place, which never overwrites, so all of them end up with the one that won.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        aside = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50) + "\n")
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        finally:
            aside.unlink()
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{path} is empty: delete it to generate a new secret key")
    return key


PRODUCTION = env_bool("EXTADMIN_PRODUCTION", False)
LOCAL_HOSTS = "localhost,127.0.0.1,[::1]"
# Debug pages show settings, paths and source: only when asked for, never by default.
DEBUG = env_bool("DJANGO_DEBUG", False)

if PRODUCTION:
    SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]  # no default: a production secret must be given
    ALLOWED_HOSTS = [h for h in os.environ["DJANGO_ALLOWED_HOSTS"].split(",") if h]
else:
    SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or local_secret_key(VAR_DIR / "secret_key")
    ALLOWED_HOSTS = [h for h in (os.environ.get("DJANGO_ALLOWED_HOSTS") or LOCAL_HOSTS).split(",") if h]


def public_url(hosts: list[str]) -> str:
    """Where operators reach the console: links in mails (password reset) point here, never at the
    Host header of the request that asked for them, which the client writes."""
    given = os.environ.get("EXTADMIN_PUBLIC_URL", "").rstrip("/")
    if given:
        return given
    named = [h for h in hosts if h != "*" and not h.startswith(".")]
    if PRODUCTION:
        if not named:
            raise ImproperlyConfigured("set EXTADMIN_PUBLIC_URL: DJANGO_ALLOWED_HOSTS names no single host")
        return f"https://{named[0]}"
    return f"http://localhost:{os.environ.get('PORT', '8000')}"


EXTADMIN_PUBLIC_URL = public_url(ALLOWED_HOSTS)

CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "extadmin.apps.ExtadminConfig",
    "nodes.apps.NodesConfig",
    "webhooks.apps.WebhooksConfig",
    "rollouts.apps.RolloutsConfig",
    "extadmin.sso.apps.SsoConfig",  # after extadmin and nodes: its roles take their permissions
]

MIDDLEWARE = [
    "extadmin.reporting.DebugPageMasking",  # outermost: masks credentials in the DEBUG pages Django made
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before the session, CSRF and authentication: a NUL or an unreadable body is refused before
    # anything looks it up (PostgreSQL refuses NUL in text: a 500 otherwise).
    "extadmin.web.middleware.RequestGuard",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "extadmin.urls"
WSGI_APPLICATION = "extadmin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Several processes (web, agents) share one SQLite file: WAL lets readers run beside the one
    # writer, IMMEDIATE transactions take the write lock up front (no upgrade deadlocks), and the
    # timeout makes a writer wait for the lock instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 60,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests start real agent processes, which cannot see an in-memory database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TZ", "UTC")
USE_I18N = True
USE_TZ = True
# Every time on every page, Django admin's too, in the one zone above and saying it (extadmin/formats/).
FORMAT_MODULE_PATH = ["extadmin.formats"]

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Outside production, whitenoise serves straight from the app and project static folders, so the
# console works before (or without) collectstatic.
WHITENOISE_USE_FINDERS = not PRODUCTION

# Error reports (the debug page, mails to admins) mask the passwords in URLs such as the broker's.
DEFAULT_EXCEPTION_REPORTER_FILTER = "extadmin.reporting.CredentialMaskingFilter"
DEFAULT_EXCEPTION_REPORTER = "extadmin.reporting.CredentialMaskingReporter"

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Single sign-on (OpenID Connect, extadmin/sso/): off unless EXTADMIN_OIDC_ISSUER is set; the local
# login stays (break-glass). The EXTADMIN_OIDC_* variables are read in extadmin/sso/config.py.
EXTADMIN_OIDC = oidc_config(os.environ, production=PRODUCTION)
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    *(["extadmin.sso.backend.OidcBackend"] if EXTADMIN_OIDC else []),
]

# --- Security (production) -----------------------------------------------------------------
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"

# --- Uploads and package limits ------------------------------------------------------------
GiB = 1024**3
EXTADMIN_MAX_UPLOAD_BYTES = env_int("EXTADMIN_MAX_UPLOAD_BYTES", 1 * GiB)
EXTADMIN_MAX_UNPACKED_BYTES = env_int("EXTADMIN_MAX_UNPACKED_BYTES", 4 * GiB)
EXTADMIN_MAX_ENTRIES = env_int("EXTADMIN_MAX_ENTRIES", 20_000)
EXTADMIN_MAX_RATIO = float(os.environ.get("EXTADMIN_MAX_RATIO", "200"))
# Entities metadata.xml may declare: each becomes a row, and a line on the pages that list them.
EXTADMIN_MAX_ENTITIES = env_int("EXTADMIN_MAX_ENTITIES", 10_000)
# Uploads are streamed to disk, never held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 0
FILE_UPLOAD_HANDLERS = ["extadmin.uploads.HashingUploadHandler"]
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = os.environ.get("EXTADMIN_UPLOAD_TMP") or None

# "warn": import packages not marked haCompatible with a visible warning; "deny": refuse them.
EXTADMIN_HA_COMPATIBILITY = os.environ.get("EXTADMIN_HA_COMPATIBILITY", "warn").strip().lower()
if EXTADMIN_HA_COMPATIBILITY not in {"warn", "deny"}:
    # A typo must not silently mean "warn": the operator asked for a policy we do not have.
    raise ImproperlyConfigured(
        f"EXTADMIN_HA_COMPATIBILITY must be 'warn' or 'deny', not {EXTADMIN_HA_COMPATIBILITY!r}"
    )
# Detached OpenSSH signatures of packages (``extadmin.signatures``), checked at import and again by
# every node before it installs: "off" ignores them, "warn" imports with a warning, "require"
# refuses unsigned, unknown-key and non-matching packages. Default: warn once keys are trusted.
_allowed_signers = os.environ.get("EXTADMIN_ALLOWED_SIGNERS", "").strip()
EXTADMIN_ALLOWED_SIGNERS = Path(_allowed_signers) if _allowed_signers else None
EXTADMIN_SIGNATURES = (
    os.environ.get("EXTADMIN_SIGNATURES", "").strip().lower() or ("warn" if EXTADMIN_ALLOWED_SIGNERS else "off")
)
if EXTADMIN_SIGNATURES not in {"off", "warn", "require"}:
    raise ImproperlyConfigured(f"EXTADMIN_SIGNATURES must be 'off', 'warn' or 'require', not {EXTADMIN_SIGNATURES!r}")
if EXTADMIN_SIGNATURES == "require" and EXTADMIN_ALLOWED_SIGNERS is None:
    # Every package would be refused: the operator meant to trust some key and named none.
    raise ImproperlyConfigured(
        "EXTADMIN_SIGNATURES=require needs EXTADMIN_ALLOWED_SIGNERS (an OpenSSH allowed_signers file)"
    )
# The platform's import policy (ThingWorx's ExtensionPackageImportPolicy keys, JSON): every kind
# allowed unless the operator says false. A typo, an unknown key or a non-boolean fails the start.
try:
    EXTADMIN_IMPORT_POLICY = parse_import_policy(os.environ.get("EXTADMIN_IMPORT_POLICY"))
except PolicyError as exc:
    raise ImproperlyConfigured(str(exc)) from None
# The default rollout policy (``rollouts.policy``) until an operator sets the cluster's own:
# "canary=node-1 batch=2 max-failures=1 activation=together"; empty: every node at once, as always.
try:
    EXTADMIN_ROLLOUT = parse_rollout_setting(os.environ.get("EXTADMIN_ROLLOUT"))
except Refusal as exc:
    raise ImproperlyConfigured(exc.reason) from None
# Archive chunk size: fixed-size rows keep memory flat and work on SQLite and PostgreSQL alike.
EXTADMIN_CHUNK_BYTES = env_int("EXTADMIN_CHUNK_BYTES", 4 * 1024 * 1024)
# Versions of each package kept in the database for rollback, the current one included (so 3:
# the current and the two before it); 1 keeps none but the current (docs/rollouts.md).
EXTADMIN_KEEP_VERSIONS = env_int("EXTADMIN_KEEP_VERSIONS", 3)
if EXTADMIN_KEEP_VERSIONS < 1:
    raise ImproperlyConfigured("EXTADMIN_KEEP_VERSIONS must be at least 1 (the current version counts as one)")

# --- This process's node --------------------------------------------------------------------
EXTADMIN_NODE = os.environ.get("EXTADMIN_NODE", "node-1")
EXTADMIN_STORAGE = Path(os.environ.get("EXTADMIN_STORAGE") or VAR_DIR / "nodes" / EXTADMIN_NODE)
# Agent timing: periodic reconcile, heartbeat, and how long one sync may run.
EXTADMIN_SYNC_INTERVAL = float(os.environ.get("EXTADMIN_SYNC_INTERVAL", "30"))
EXTADMIN_HEARTBEAT_INTERVAL = float(os.environ.get("EXTADMIN_HEARTBEAT_INTERVAL", "5"))
EXTADMIN_SYNC_DEADLINE = float(os.environ.get("EXTADMIN_SYNC_DEADLINE", "900"))
# How long a removal waits for this node's folder lock of a package (held by a sync or an import)
# before it answers "try again"; a request is never blocked for ever behind a hung sync.
EXTADMIN_LOCK_WAIT = float(os.environ.get("EXTADMIN_LOCK_WAIT", "30"))
# The operator's health probe (nodes.probe): a command line, split like a shell's words, run without
# a shell after a node swaps a package in; it must exit 0 within the timeout or the swap is undone.
try:
    EXTADMIN_HEALTH_PROBE = shlex.split(os.environ.get("EXTADMIN_HEALTH_PROBE", ""))
except ValueError as exc:
    raise ImproperlyConfigured(f"EXTADMIN_HEALTH_PROBE is not a command line: {exc}") from None
EXTADMIN_HEALTH_PROBE_TIMEOUT = float(os.environ.get("EXTADMIN_HEALTH_PROBE_TIMEOUT") or "60")
# A node that failed a package's checksum retries it after EXTADMIN_SYNC_RETRY_BACKOFF seconds,
# doubled each time up to EXTADMIN_SYNC_RETRY_BACKOFF_MAX, at most EXTADMIN_SYNC_RETRIES times; then
# it gives up until a new version, a "retry now" or an operator action (nodes.retries).
EXTADMIN_SYNC_RETRIES = env_int("EXTADMIN_SYNC_RETRIES", 5)
EXTADMIN_SYNC_RETRY_BACKOFF = float(os.environ.get("EXTADMIN_SYNC_RETRY_BACKOFF") or "5")
EXTADMIN_SYNC_RETRY_BACKOFF_MAX = float(os.environ.get("EXTADMIN_SYNC_RETRY_BACKOFF_MAX") or "300")
# An online node that has not converged a package this long after its import is degraded (seconds).
EXTADMIN_DEGRADED_AFTER = float(os.environ.get("EXTADMIN_DEGRADED_AFTER") or 2 * EXTADMIN_SYNC_INTERVAL)
# Live pages (server-sent events, docs/operations.md "Live updates"): one stream lasts this long,
# then the browser reconnects (a bounded stream never holds a thread for ever); at most this many
# streams at once per console process (the others poll a cheap ETag instead: keep it below
# gunicorn's --threads); and how often each console process rechecks, while a stream is open, what
# time alone changes (liveness).
EXTADMIN_LIVE_STREAM_SECONDS = float(os.environ.get("EXTADMIN_LIVE_STREAM_SECONDS", "55"))
EXTADMIN_LIVE_STREAMS = int(os.environ.get("EXTADMIN_LIVE_STREAMS", "4"))
EXTADMIN_LIVE_RECHECK_SECONDS = float(os.environ.get("EXTADMIN_LIVE_RECHECK_SECONDS", "10"))
# Test-only fault injection ("step=raise" or "step=kill", comma separated). Ignored in production.
EXTADMIN_FAULTS = "" if PRODUCTION else os.environ.get("EXTADMIN_FAULTS", "")

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "filesystem://"
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Queue bindings (node.<name> → its queue) live here; kombu's default is relative to the
        # working directory, which would split producers and agents started from different folders.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # How often an idle agent looks in its queue folder (kombu's default: every second). A listing
        # of one local folder is cheap; a nudge then reaches the agent within a fifth of a second.
        "polling_interval": float(os.environ.get("EXTADMIN_BROKER_POLL_SECONDS", "0.2")),
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_CREATE_MISSING_QUEUES = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A nudge is a hint: with the broker down, publishing must fail fast instead of blocking an import.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_CONNECTION_TIMEOUT = 2

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "extadmin API",
    "DESCRIPTION": "Import, inspect and remove extension packages; read cluster convergence.",
    "VERSION": "1",
    # Swagger UI from the installed sidecar package's static files, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}
# The audit records REMOTE_ADDR. Only behind a proxy that appends X-Forwarded-For may it be trusted
# (its right-most address is what the proxy saw); a client can write anything in it otherwise.
EXTADMIN_TRUST_X_FORWARDED_FOR = env_bool("EXTADMIN_TRUST_X_FORWARDED_FOR", False)

# --- Monitoring -----------------------------------------------------------------------------
# /metrics: with a token set, only "Authorization: Bearer <token>" is answered; without, only loopback.
EXTADMIN_METRICS_TOKEN = os.environ.get("EXTADMIN_METRICS_TOKEN", "")
# An agent's own metrics (process, syncs) on 127.0.0.1:<port>; 0 or unset: none.
EXTADMIN_AGENT_METRICS_PORT = env_int("EXTADMIN_AGENT_METRICS_PORT", 0)

# EXTADMIN_LOG_FORMAT=json: one JSON object per line; every handler masks credentials (extadmin.logs).
LOGGING = logging_config(os.environ.get("EXTADMIN_LOG_LEVEL", "INFO"))

# --- Webhooks (``webhooks``; sent by ``manage.py run_worker``, never by a request or an agent) ------
# Attempts per delivery (the first included), each bounded by the timeout; the wait before attempt
# n+1 is EXTADMIN_WEBHOOK_BACKOFF × 2^(n-1) seconds, at most an hour.
EXTADMIN_WEBHOOK_MAX_ATTEMPTS = env_int("EXTADMIN_WEBHOOK_MAX_ATTEMPTS", 5)
EXTADMIN_WEBHOOK_TIMEOUT = float(os.environ.get("EXTADMIN_WEBHOOK_TIMEOUT", "5"))
EXTADMIN_WEBHOOK_BACKOFF = float(os.environ.get("EXTADMIN_WEBHOOK_BACKOFF", "10"))
# How often the worker compares the cluster with what it last emitted, and sends what is due.
EXTADMIN_WEBHOOK_SCAN_INTERVAL = float(os.environ.get("EXTADMIN_WEBHOOK_SCAN_INTERVAL", "1"))
