"""Shared fixtures: a project with a lead, raters, an engineer and an outsider."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from rest_framework.test import APIClient

from core import db as database
from labeling import services as labeling_services
from labeling.accounts.services import api_token_create
from labeling.models import Membership, Project, Role
from tests.factories import UserFactory
from tests.helpers import sample_records
from tests.llm.fake_server import FakeServer


def pytest_collection_modifyitems(config, items) -> None:
    """Skip tests marked `postgresql("why")` on other databases, giving the why.

    Every feature works on SQLite too, so the suite runs on both; only tests of
    PostgreSQL-specific behaviour (COPY, SKIP LOCKED under threads, fast paths held to
    their portable twins) carry the mark.
    """
    if database.is_postgresql():
        return
    for item in items:
        marker = item.get_closest_marker("postgresql")
        if marker is not None:
            why = marker.args[0] if marker.args else "PostgreSQL-specific behaviour"
            item.add_marker(pytest.mark.skip(reason=f"needs PostgreSQL: {why}"))


def _delete_rows_flush(
    original: Callable[..., list[str]],
) -> Callable[..., list[str]]:
    """PostgreSQL's flush, emptying the tables with DELETE where it would TRUNCATE them.

    After every transactional test Django empties every table. PostgreSQL's TRUNCATE gives
    each of the ~40 tables and their indexes new files, which costs seconds per test on a
    busy 2-core machine; deleting the few rows a test left costs milliseconds. The end state
    is the same (every table empty; sequences untouched, as Django's flush leaves them
    without `reset_sequences`). The foreign keys are DEFERRABLE INITIALLY DEFERRED, so the
    order of the DELETEs does not matter. With `reset_sequences` Django's own TRUNCATE runs.
    """

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or not tables:
            return original(
                self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        return [f"DELETE FROM {self.quote_name(table)};" for table in tables]

    return sql_flush


@pytest.fixture(scope="session", autouse=True)
def flush_postgresql_by_delete() -> Iterator[None]:
    if not database.is_postgresql():
        yield
        return
    from django.db.backends.postgresql.operations import DatabaseOperations

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            DatabaseOperations, "sql_flush", _delete_rows_flush(DatabaseOperations.sql_flush)
        )
        yield


@pytest.fixture(autouse=True)
def fresh_cache():
    """Throttle counters live in the cache: each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The default hasher costs about a second per user on a 2-core machine."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def celery_tasks_run_in_process():
    """Tasks run in-process unless a test starts a real worker (it turns this off itself)."""
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def make_user(db) -> Callable[..., object]:
    def make(username: str, **extra):
        return UserFactory.create(username=username, **extra)

    return make


@pytest.fixture
def lead(make_user):
    return make_user("lead")


@pytest.fixture
def project(lead) -> Project:
    return labeling_services.project_create(creator=lead, name="Helpfulness", overlap=2)


@pytest.fixture
def add_member(project) -> Callable[..., object]:
    def add(user, role: str = Role.RATER, target: Project | None = None):
        Membership.objects.create(project=target or project, user=user, role=role)
        return user

    return add


@pytest.fixture
def rater(make_user, add_member):
    return add_member(make_user("rater1"))


@pytest.fixture
def rater2(make_user, add_member):
    return add_member(make_user("rater2"))


@pytest.fixture
def engineer(make_user, add_member):
    return add_member(make_user("engineer"), Role.ENGINEER)


@pytest.fixture
def make_crowd(make_user, add_member) -> Callable[..., list]:
    """``make_crowd(n)``: raters crowd0 … crowd{n-1}, members of the project."""

    def make(size: int) -> list:
        return [add_member(make_user(f"crowd{index}")) for index in range(size)]

    return make


@pytest.fixture
def outsider(make_user):
    return make_user("outsider")


@pytest.fixture(autouse=True)
def export_folder(settings, tmp_path):
    """Export files go to the test's own folder, never the project's data folder."""
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "exports")},
        },
    }
    return tmp_path / "exports"


@pytest.fixture
def fake_llm() -> Iterator[FakeServer]:
    """A real OpenAI-compatible HTTP server on 127.0.0.1 (tests/llm/fake_server.py)."""
    with FakeServer() as server:
        yield server


@pytest.fixture
def api_for() -> Callable[..., APIClient]:
    def client_for(user) -> APIClient:
        client = APIClient()
        secret = api_token_create(user=user, name="tests").secret
        client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
        return client

    return client_for


@pytest.fixture
def imported(project) -> Project:
    labeling_services.prompts_import(project=project, raw=json.dumps(sample_records(5)))
    return project
