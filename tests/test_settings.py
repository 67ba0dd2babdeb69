"""Settings read from the environment and fail loudly on bad values."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

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
    assert result.stdout.split() == ["core.postgresql", "False", "True"]


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


def settings_from(monkeypatch, **environment: str) -> dict:
    """The settings module's values for this environment, read in-process (the module reads
    only the environment; `runpy` runs it afresh each time)."""
    for key in list(os.environ):
        if key.startswith(("DATABASE_", "EXPORT_", "DISABLE_SERVER_SIDE_CURSORS")):
            monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    return runpy.run_path(str(ROOT / "config" / "settings.py"))


def test_server_side_cursors_stay_on_unless_the_environment_switches_them_off(monkeypatch):
    default = settings_from(monkeypatch)["DATABASES"]["default"]
    assert default["DISABLE_SERVER_SIDE_CURSORS"] is False
    pooled = settings_from(
        monkeypatch,
        DATABASE_URL="postgres://ranklab@pgbouncer:6432/ranklab",
        DISABLE_SERVER_SIDE_CURSORS="true",
    )["DATABASES"]["default"]
    assert pooled["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert pooled["PORT"] == 6432


def test_postgresql_prepares_statements_only_when_the_environment_asks(monkeypatch):
    url = "postgres://ranklab@primary:5432/ranklab"
    plain = settings_from(monkeypatch, DATABASE_URL=f"{url}?sslmode=require")
    assert plain["DATABASE_PREPARED_STATEMENTS"] is False
    assert plain["DATABASES"]["default"]["OPTIONS"] == {"sslmode": "require"}
    prepared = settings_from(monkeypatch, DATABASE_URL=url, DATABASE_PREPARED_STATEMENTS="true")
    options = prepared["DATABASES"]["default"]["OPTIONS"]
    assert (options["server_side_binding"], options["prepare_threshold"]) == (True, 2)
    sqlite = settings_from(monkeypatch, DATABASE_PREPARED_STATEMENTS="true")["DATABASES"]
    assert "server_side_binding" not in sqlite["default"].get("OPTIONS", {})


def test_no_replica_and_no_router_unless_a_replica_url_is_given(monkeypatch):
    loaded = settings_from(monkeypatch, DATABASE_URL="postgres://ranklab@primary:5432/ranklab")
    assert set(loaded["DATABASES"]) == {"default"}
    assert loaded["DATABASE_ROUTERS"] == []


def test_a_replica_url_adds_the_replica_alias_and_its_router(monkeypatch):
    loaded = settings_from(
        monkeypatch,
        DATABASE_URL="postgres://ranklab@primary:5432/ranklab",
        DATABASE_REPLICA_URL="postgres://reader@replica:5432/ranklab",
        DISABLE_SERVER_SIDE_CURSORS="yes",
    )
    replica = loaded["DATABASES"]["replica"]
    assert (replica["HOST"], replica["USER"]) == ("replica", "reader")
    assert replica["ENGINE"] == "core.postgresql"
    assert replica["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert replica["TEST"] == {"MIRROR": "default"}
    assert loaded["DATABASE_ROUTERS"] == ["config.routers.ReplicaRouter"]


def test_a_replica_of_another_kind_of_database_fails_loudly(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="must be the same kind of database"):
        settings_from(
            monkeypatch,
            DATABASE_URL="postgres://ranklab@primary:5432/ranklab",
            DATABASE_REPLICA_URL="sqlite:////tmp/replica.sqlite3",
        )


def test_export_files_go_to_a_local_folder_by_default(monkeypatch):
    exports = settings_from(monkeypatch, EXPORT_ROOT="/srv/exports")["STORAGES"]["exports"]
    assert exports == {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": "/srv/exports"},
    }


def test_export_files_go_to_an_s3_compatible_bucket_when_asked(monkeypatch):
    exports = settings_from(
        monkeypatch,
        EXPORT_STORAGE="s3",
        EXPORT_S3_BUCKET="ranklab-exports",
        EXPORT_S3_PREFIX="/prod/",
        EXPORT_S3_ENDPOINT_URL="https://minio.internal:9000",
        EXPORT_S3_REGION="eu-west-1",
    )["STORAGES"]["exports"]
    assert exports["BACKEND"] == "storages.backends.s3.S3Storage"
    options = exports["OPTIONS"]
    assert options["bucket_name"] == "ranklab-exports"
    assert options["location"] == "prod"
    assert options["endpoint_url"] == "https://minio.internal:9000"
    assert options["region_name"] == "eu-west-1"
    assert options["default_acl"] is None
    assert options["file_overwrite"] is False
    assert "access_key" not in options  # from AWS_* variables or an instance role


def test_s3_export_storage_without_a_bucket_fails_loudly(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="EXPORT_STORAGE=s3 needs EXPORT_S3_BUCKET"):
        settings_from(monkeypatch, EXPORT_STORAGE="s3")
    with pytest.raises(ImproperlyConfigured, match="EXPORT_STORAGE='ftp' is not local or s3"):
        settings_from(monkeypatch, EXPORT_STORAGE="ftp")
