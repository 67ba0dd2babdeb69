"""Red-team fixtures: a project of briefs whose target is a real OpenAI-compatible server."""

from __future__ import annotations

import pytest

from labeling.models import Project
from tests.authoring.redteam.helpers import briefs_import, make_red_team


@pytest.fixture
def red_project(project, fake_llm) -> Project:
    make_red_team(project, fake_llm.base_url)
    briefs_import(project)
    return project
