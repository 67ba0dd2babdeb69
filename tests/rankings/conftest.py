"""Fixtures for the rankings tests: a crowd of three, tasks run in-process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.rankings.agreement_helpers import eager_tasks


@pytest.fixture
def eager() -> Iterator[None]:
    """Celery tasks in-process with errors propagated, whatever the broker setting says."""
    with eager_tasks():
        yield


@pytest.fixture
def crowd(make_crowd) -> list:
    return make_crowd(3)
