"""The container setup survives production: compose runs every service the design names,
needs a real SECRET_KEY, migrates once before anything starts, restarts and health-checks
every long-running service; the image runs unprivileged from the installed package."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("web", "worker", "beat")
LONG_RUNNING = ("postgres", "redis", *APP_SERVICES)


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def services() -> dict:
    return compose()["services"]


def command_line(service: dict) -> str:
    command = service["command"]
    return command if isinstance(command, str) else shlex.join(command)


def healthcheck_line(service: dict) -> str:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return test
    assert test[0] in {"CMD", "CMD-SHELL"}
    return test[1] if test[0] == "CMD-SHELL" else shlex.join(test[1:])


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    logical = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in logical.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def dockerignore_patterns() -> set[str]:
    patterns = set()
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.add(line.removeprefix("**/").strip("/"))
    return patterns


def test_compose_runs_postgres_redis_migrate_web_worker_and_beat():
    assert set(services()) == {"postgres", "redis", "migrate", *APP_SERVICES}


def test_secret_key_is_required_with_no_silent_default():
    for name in ("migrate", *APP_SERVICES):
        secret = services()[name]["environment"]["SECRET_KEY"]
        assert re.fullmatch(r"\$\{SECRET_KEY:\?[^}]+\}", secret), (name, secret)


def test_app_services_get_database_and_broker_from_the_environment():
    for name in ("migrate", *APP_SERVICES):
        service = services()[name]
        environment = service["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://")
        assert environment["CELERY_BROKER_URL"].startswith("redis://")
        assert environment["DEBUG"] == "false"
        assert service["build"] == "."


def test_migrations_run_once_before_web_worker_and_beat_start():
    migrate = services()["migrate"]
    assert command_line(migrate) == "ranklab manage migrate --noinput"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate.get("restart", "no") == "no"
    for name in APP_SERVICES:
        service = services()[name]
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert service["depends_on"]["redis"] == {"condition": "service_healthy"}
        assert "migrate" not in command_line(service)


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_restart_and_have_a_healthcheck(name):
    service = services()[name]
    assert service["restart"] == "unless-stopped"
    assert healthcheck_line(service)
    assert service["healthcheck"]["retries"] >= 3


def test_app_services_run_the_ranklab_command():
    assert command_line(services()["web"]) == "ranklab serve"
    assert command_line(services()["worker"]).startswith("ranklab worker")
    assert command_line(services()["beat"]).startswith("ranklab beat")


def test_web_healthcheck_probes_healthz_with_python_not_curl():
    check = healthcheck_line(services()["web"])
    assert check == "python -m core.health"
    assert "curl" not in check
    health = (ROOT / "core" / "health.py").read_text()
    assert "/healthz" in health


def test_worker_and_beat_healthchecks_ping_their_own_node():
    worker = healthcheck_line(services()["worker"])
    beat = healthcheck_line(services()["beat"])
    # `$$` is compose's escape: the container's shell expands $HOSTNAME, not compose.
    assert "inspect ping" in worker
    assert "--destination celery@$$HOSTNAME" in worker
    assert "inspect ping" in beat
    assert "--destination celerybeat@$$HOSTNAME" in beat
    # beat answers pings only with remote control on; it goes silent when it stops ticking
    assert "--enable-remote-control" in command_line(services()["beat"])


def test_backing_services_keep_their_healthchecks():
    assert "pg_isready" in healthcheck_line(services()["postgres"])
    assert "redis-cli ping" in healthcheck_line(services()["redis"])


def test_dockerfile_runs_as_an_unprivileged_user():
    users = [arguments for keyword, arguments in final_stage() if keyword == "USER"]
    assert users, "the final image must switch to a non-root USER"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_dockerfile_healthcheck_probes_healthz_with_python():
    checks = [arguments for keyword, arguments in final_stage() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    assert '["python", "-m", "core.health"]' in checks[0]


def test_dockerfile_installs_the_package_without_dev_extras_and_collects_static():
    instructions = dockerfile_instructions()
    runs = " ".join(arguments for keyword, arguments in instructions if keyword == "RUN")
    assert "pip install --no-cache-dir" in runs
    assert "[dev]" not in runs
    assert "ranklab manage collectstatic --noinput" in runs
    cmd = [arguments for keyword, arguments in final_stage() if keyword == "CMD"]
    assert cmd == ['["ranklab", "serve"]']


@pytest.mark.parametrize(
    "pattern",
    [
        ".git",
        ".venv",
        "tests",
        "bench",
        "docs",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "*.sqlite3",
        "var",
        "staticfiles",
        "*.egg-info",
        "build",
        "dist",
        ".env",
    ],
)
def test_dockerignore_keeps_development_files_out_of_the_image(pattern):
    assert pattern in dockerignore_patterns()


SCALE_OUT_VARIABLES = {
    "DISABLE_SERVER_SIDE_CURSORS": "false",
    "DATABASE_REPLICA_URL": "",
    "EXPORT_STORAGE": "local",
    "EXPORT_S3_BUCKET": "",
    "EXPORT_S3_PREFIX": "",
    "EXPORT_S3_ENDPOINT_URL": "",
    "EXPORT_S3_REGION": "",
    "EXPORT_S3_ACCESS_KEY_ID": "",
    "EXPORT_S3_SECRET_ACCESS_KEY": "",
}


@pytest.mark.parametrize("variable", sorted(SCALE_OUT_VARIABLES))
def test_scale_out_settings_pass_through_with_the_one_machine_defaults(variable):
    """Pooling, replica and bucket come from .env; unset, compose keeps one machine's shape."""
    default = SCALE_OUT_VARIABLES[variable]
    for name in ("migrate", *APP_SERVICES):
        value = services()[name]["environment"][variable]
        assert value == f"${{{variable}:-{default}}}", (name, value)


def test_every_scale_out_variable_of_the_compose_file_is_documented():
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    for variable in SCALE_OUT_VARIABLES:
        assert f"`{variable}`" in deploy, variable


def test_the_image_installs_the_s3_extra_for_export_buckets():
    runs = " ".join(
        arguments for keyword, arguments in dockerfile_instructions() if keyword == "RUN"
    )
    assert "['optional-dependencies']['s3']" in runs
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(
        requirement.startswith("django-storages[s3]")
        for requirement in project["optional-dependencies"]["s3"]
    )
