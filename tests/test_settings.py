"""Settings read from the environment and fail loudly on bad values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_settings(**environment: str) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "DEBUG", "SECRET_KEY"}
    }
    env.update(environment)
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup();"
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER, s.DEBUG)"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_defaults_are_sqlite_with_in_process_tasks():
    result = load_settings()
    assert result.stdout.split() == ["django.db.backends.sqlite3", "True", "True"]


def test_database_and_broker_urls_switch_to_postgres_and_a_real_queue():
    result = load_settings(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/ranklab",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/15",
    )
    assert result.stdout.split() == ["django.db.backends.postgresql", "False", "True"]


def test_production_without_a_secret_key_fails_loudly():
    result = load_settings(DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_a_bad_boolean_names_the_variable():
    result = load_settings(DEBUG="maybe")
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def load_security_settings(**environment: str) -> list[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SECURE_")}
    env.update(environment)
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup();"
        "from django.conf import settings as s;"
        "print(s.SECURE_HSTS_SECONDS, s.SECURE_SSL_REDIRECT, s.SECURE_PROXY_SSL_HEADER)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    return result.stdout.strip().split(maxsplit=2)


def test_tls_settings_come_from_the_environment():
    assert load_security_settings() == ["0", "False", "None"]
    assert load_security_settings(
        SECURE_HSTS_SECONDS="31536000", SECURE_SSL_REDIRECT="true", SECURE_PROXY_SSL_HEADER="true"
    ) == ["31536000", "True", "('HTTP_X_FORWARDED_PROTO', 'https')"]
