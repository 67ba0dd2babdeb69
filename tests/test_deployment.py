"""The compose file runs every service the design names, with the settings they read."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_postgres_redis_web_worker_and_beat():
    assert set(compose()["services"]) == {"postgres", "redis", "web", "worker", "beat"}


def test_app_services_get_database_broker_and_secret_from_the_environment():
    services = compose()["services"]
    for name in ("web", "worker", "beat"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://")
        assert environment["CELERY_BROKER_URL"].startswith("redis://")
        assert environment["SECRET_KEY"]
        assert environment["DEBUG"] == "false"
        assert services[name]["build"] == "."


def test_web_serves_with_gunicorn_and_worker_consumes_the_task_queue():
    services = compose()["services"]
    assert "gunicorn config.wsgi:application" in services["web"]["command"]
    assert "celery -A config worker" in services["worker"]["command"]
    assert "--queues ranklab" in services["worker"]["command"]
    assert "celery -A config beat" in services["beat"]["command"]


def test_dockerfile_collects_static_files_for_whitenoise():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "collectstatic" in dockerfile
    assert "pip install" in dockerfile
