"""One settings module for every environment, read from environment variables.

Defaults give the embedded demo setup (SQLite, tasks run in-process); production and CI set
DATABASE_URL and CELERY_BROKER_URL to PostgreSQL and Redis.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false)")


def postgresql_options(*, prepared: bool) -> dict[str, object]:
    """psycopg options. ``prepared``: parameters bound on the server and a statement run
    twice on a connection prepared there, so PostgreSQL stops parsing and planning the rater
    loop's statements on every call (about 40% less of its CPU a submit, docs/benchmarks.md).
    Off by default: a pooler in transaction mode must support protocol-level prepared
    statements (PgBouncer 1.21+ with ``max_prepared_statements``), docs/deploy.md."""
    if not prepared:
        return {}
    return {"server_side_binding": True, "prepare_threshold": 2}


# Django's PostgreSQL backend with a health check that costs no round trip (core.postgresql).
POSTGRESQL_ENGINE = "core.postgresql"


def with_ranklab_backend(database: dj_database_url.DBConfig) -> dj_database_url.DBConfig:
    """The parsed database settings, PostgreSQL served by `POSTGRESQL_ENGINE`."""
    if database["ENGINE"] == "django.db.backends.postgresql":
        database["ENGINE"] = POSTGRESQL_ENGINE
    return database


def sqlite_test_database_name(name: str) -> str | None:
    """The SQLite test database: a file beside the database, ``test_<name>``, not Django's
    default shared in-memory one. In memory, the test live server hands every request thread
    the same connection, so two requests storing at once (the arena's two streams) break
    each other; a file gives each thread its own connection, as in production."""
    if name in ("", ":memory:") or name.startswith("file:"):
        return None
    path = Path(name)
    return str(path.with_name(f"test_{path.name}"))


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from error


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from error


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def default_data_dir() -> Path:
    """Where the embedded database, export files and collected static files live.

    In a checkout that is the checkout itself (what contributors expect); an installed
    package keeps its data in the user's data folder, never inside site-packages.
    """
    if (BASE_DIR / "manage.py").exists():
        return BASE_DIR
    xdg_data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg_data_home) / "ranklab"


DATA_DIR = Path(env_str("RANKLAB_DATA_DIR", str(default_data_dir())))

DEBUG = env_bool("DEBUG", default=True)
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "ranklab-insecure-development-key-change-me"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
SITE_URL = env_str("SITE_URL", "http://localhost:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "core",
    "labeling",
    "rankings",
    "llm",
    "authoring",
    "authoring.demonstrations",
    "authoring.redteam",
    "authoring.arena",
    "exports",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.views.ApiNotFoundMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "core.security.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "core.views.PageMessageMiddleware",  # Django's, skipped under /api/
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            "builtins": ["labeling.templatetags.markdown"],
        },
    },
]

DATABASES = {
    "default": with_ranklab_backend(
        dj_database_url.parse(
            env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'ranklab.sqlite3'}"),
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
            # A persistent connection the server dropped (a restart, pg_terminate_backend)
            # is replaced when a request first uses it, not left to fail the request (a
            # 500): on PostgreSQL the request's first read is the check (core.postgresql).
            conn_health_checks=env_bool("DATABASE_CONN_HEALTH_CHECKS", default=True),
        )
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Short transactions plus WAL keep the in-process demo responsive with several tabs open.
    # IMMEDIATE transactions take the write lock up front, so concurrent raters wait for it
    # (up to the timeout) instead of failing with "database is locked" mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["TEST"] = {
        "NAME": sqlite_test_database_name(str(DATABASES["default"].get("NAME", "")))
    }
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", default=False)
if DATABASES["default"]["ENGINE"] == POSTGRESQL_ENGINE:
    # Merged into what DATABASE_URL's query string sets (sslmode and the like).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        postgresql_options(prepared=DATABASE_PREPARED_STATEMENTS)
    )
# Behind PgBouncer in transaction mode a server-side cursor (Django's `.iterator()` on
# PostgreSQL) may be fetched on another server connection than the one that declared it:
# switch them off there (docs/deploy.md lists every place that iterates).
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env_bool(
    "DISABLE_SERVER_SIDE_CURSORS", default=False
)
# An opt-in read replica (same vendor and schema as the primary): export jobs and agreement
# runs read from it inside `core.db.replica_reads()`, everything else and every write goes
# to the primary (config/routers.py). Tests point it at the test database (MIRROR).
DATABASE_REPLICA_URL = env_str("DATABASE_REPLICA_URL", "")
DATABASE_ROUTERS: list[str] = []
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = with_ranklab_backend(
        dj_database_url.parse(
            DATABASE_REPLICA_URL,
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
            conn_health_checks=env_bool("DATABASE_CONN_HEALTH_CHECKS", default=True),
        )
    )
    if DATABASES["replica"]["ENGINE"] != DATABASES["default"]["ENGINE"]:
        raise ImproperlyConfigured("DATABASE_REPLICA_URL must be the same kind of database")
    DATABASES["replica"]["DISABLE_SERVER_SIDE_CURSORS"] = DATABASES["default"][
        "DISABLE_SERVER_SIDE_CURSORS"
    ]
    if DATABASES["replica"]["ENGINE"] == POSTGRESQL_ENGINE:
        DATABASES["replica"].setdefault("OPTIONS", {}).update(
            postgresql_options(prepared=DATABASE_PREPARED_STATEMENTS)
        )
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    DATABASE_ROUTERS = ["config.routers.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Throttle counters live in the cache: per process by default; set CACHE_URL=redis://… so
# every web process shares them.
CACHE_URL = env_str("CACHE_URL", "")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "labeling:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(DATA_DIR / "staticfiles")))


def exports_storage_setting() -> dict[str, object]:
    """Export files: a local folder (EXPORT_ROOT) by default; with EXPORT_STORAGE=s3 an
    S3-compatible bucket through django-storages, configured by the EXPORT_S3_* variables
    (credentials may also come from the usual AWS_* variables or an instance role)."""
    kind = env_str("EXPORT_STORAGE", "local").strip().lower()
    if kind == "local":
        return {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": env_str("EXPORT_ROOT", str(DATA_DIR / "var" / "exports"))},
        }
    if kind != "s3":
        raise ImproperlyConfigured(f"EXPORT_STORAGE={kind!r} is not local or s3")
    bucket = env_str("EXPORT_S3_BUCKET", "")
    if not bucket:
        raise ImproperlyConfigured("EXPORT_STORAGE=s3 needs EXPORT_S3_BUCKET")
    options: dict[str, object] = {
        "bucket_name": bucket,
        "location": env_str("EXPORT_S3_PREFIX", "").strip("/"),
        # Files are served through Ranklab's download endpoint (permission checked), never
        # by a public or presigned URL; a name is never silently changed on upload.
        "default_acl": None,
        "querystring_auth": True,
        "file_overwrite": False,
    }
    optional = {
        "endpoint_url": "EXPORT_S3_ENDPOINT_URL",
        "region_name": "EXPORT_S3_REGION",
        "access_key": "EXPORT_S3_ACCESS_KEY_ID",
        "secret_key": "EXPORT_S3_SECRET_ACCESS_KEY",
        "addressing_style": "EXPORT_S3_ADDRESSING_STYLE",
    }
    for option, variable in optional.items():
        if value := env_str(variable, ""):
            options[option] = value
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}


STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "exports": exports_storage_setting(),
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "labeling.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_RATES": {
        "sign_in_address": env_str("THROTTLE_SIGN_IN_ADDRESS", "30/min"),
        "sign_in_username": env_str("THROTTLE_SIGN_IN_USERNAME", "10/min"),
        "token_create": env_str("THROTTLE_TOKEN_CREATE", "20/hour"),
    },
    "NUM_PROXIES": env_int("NUM_PROXIES", 0) or None,
}
# Personal API tokens (labeling/accounts): a sign-in token (POST /api/auth/token/) expires
# after this many days, and a user keeps at most this many live ones (the oldest is revoked).
API_TOKEN_SIGN_IN_DAYS = env_int("API_TOKEN_SIGN_IN_DAYS", 30)
API_TOKEN_SIGN_IN_KEEP = env_int("API_TOKEN_SIGN_IN_KEEP", 20)
# JSON request bodies (imports have their own, larger limit).
API_JSON_MAX_BYTES = env_int("API_JSON_MAX_BYTES", 1_000_000)
# An import's body over the API or a file uploaded on the project page; larger files go
# through `manage.py import_prompts`, which streams them.
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 200 * 1024 * 1024)
SPECTACULAR_SETTINGS = {
    "TITLE": "Ranklab API",
    "DESCRIPTION": "Preference labeling for RLHF, reward-model and DPO data.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and ReDoc from the package's own static files: the docs work offline and
    # their version is pinned with the package.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Celery: with no broker configured, tasks run eagerly in-process (the demo needs only Python).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 1800)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 1860)
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "ranklab")
# The job lifecycle (core/jobs.py, docs/reliability.md): a running job beats every
# JOB_HEARTBEAT_SECONDS; silent for JOB_STALE_SECONDS it lost its worker and is retaken by its
# redelivered (or re-sent) message; a queued job not picked up JOB_QUEUED_SECONDS after its
# message was sent lost it, and the sweep (every JOB_SWEEP_SECONDS) sends it again; queued
# or silent for JOB_GIVE_UP_SECONDS, it is failed with the reason.
JOB_HEARTBEAT_SECONDS = env_float("JOB_HEARTBEAT_SECONDS", 15.0)
JOB_STALE_SECONDS = env_int("JOB_STALE_SECONDS", 90)
JOB_QUEUED_SECONDS = env_int("JOB_QUEUED_SECONDS", 120)
JOB_GIVE_UP_SECONDS = env_int("JOB_GIVE_UP_SECONDS", 1800)
JOB_SWEEP_SECONDS = env_float("JOB_SWEEP_SECONDS", 60.0)
if not 0 < JOB_HEARTBEAT_SECONDS < JOB_STALE_SECONDS < JOB_GIVE_UP_SECONDS:
    raise ImproperlyConfigured(
        "need 0 < JOB_HEARTBEAT_SECONDS < JOB_STALE_SECONDS < JOB_GIVE_UP_SECONDS"
    )
# An agreement run reads and computes the project's prompts in parts of this many prompt
# ids; other workers take parts of a run whose project has more than one. Smaller parts
# overlap the database and the computing better and hold less (docs/benchmarks.md: 40k
# against 100k, 1M rankings 13.6 vs 14.5-15.2 s and 440 vs 620 MB; 10M the same time,
# 476 vs 734 MB; 20k was slower again).
AGREEMENT_PART_PROMPTS = env_int("AGREEMENT_PART_PROMPTS", 40_000)
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # a killed worker's job is redelivered and retaken
CELERY_BEAT_SCHEDULE = {
    "sweep-lost-jobs": {
        "task": "core.tasks.jobs_sweep",
        "schedule": JOB_SWEEP_SECONDS,
    },
    "agreement-for-active-projects": {
        "task": "rankings.tasks.agreement_run_all_projects",
        "schedule": float(env_int("AGREEMENT_BEAT_SECONDS", 900)),
    },
}

# Models in the loop (llm/): endpoint API keys are encrypted with RANKLAB_SECRETS_KEY (comma-
# separated to rotate: the first encrypts, any decrypts), else a key derived from SECRET_KEY.
# Each endpoint's concurrency limit is shared by all workers through a Redis semaphore at
# LLM_SEMAPHORE_URL (the broker when it is Redis); in-process without one.
RANKLAB_SECRETS_KEY = env_str("RANKLAB_SECRETS_KEY", "")
LLM_SEMAPHORE_URL = env_str(
    "LLM_SEMAPHORE_URL", CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else ""
)
# Prompts per generation chunk; 0: sized by the endpoints' concurrency (llm.services.generation).
LLM_CHUNK_PROMPTS = env_int("LLM_CHUNK_PROMPTS", 0)
# Endpoints on link-local / cloud metadata addresses (169.254.0.0/16, fd00:ec2::254) are
# refused unless this is on (llm/addresses.py); private and loopback hosts are allowed.
LLM_ALLOW_LINK_LOCAL = env_bool("LLM_ALLOW_LINK_LOCAL", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", default=True)

# Behind a TLS-terminating proxy: HSTS, the redirect and the proxy's scheme header are the
# operator's to switch on from the environment.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=False)
# Health probes come from inside the network over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
if env_bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"

# Content-Security-Policy (Django's own middleware): pages load scripts, styles, images and
# fonts from this site only, with no inline script or style; htmx talks to this site only.
# The API docs (Swagger UI, ReDoc) relax styles and workers on their own views.
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
# Powerful browser features no page here uses are switched off for every origin.
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=()"
)
