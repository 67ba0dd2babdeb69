"""An arena project with two endpoints on the fake OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from authoring.arena.options import clean_arena_options
from labeling import services as labeling_services
from labeling.models import Project, TaskKind
from tests.llm.helpers import make_endpoint


@pytest.fixture(autouse=True)
def in_process_semaphore(settings):
    settings.LLM_SEMAPHORE_URL = ""


@pytest.fixture
def make_arena(lead, fake_llm) -> Callable[..., Project]:
    def make(endpoints: int = 2, **options: Any) -> Project:
        project = labeling_services.project_create(
            creator=lead,
            name=f"Arena {Project.objects.count()}",
            task_kind=TaskKind.ARENA,
            task_options=clean_arena_options(options),
            overlap=3,
        )
        for index in range(endpoints):
            make_endpoint(project, fake_llm.base_url, name=f"model-{index}", model=f"fake-{index}")
        return project

    return make


@pytest.fixture
def arena(make_arena) -> Project:
    return make_arena()


@pytest.fixture
def arena_rater(make_user, add_member, arena):
    return add_member(make_user("voter"), target=arena)
