"""The prompt browser's scenario as a fixture (built in scenario.py)."""

from __future__ import annotations

import pytest

from tests.rankings.prompts.scenario import Browse, build_browse


@pytest.fixture
def browse(project, lead, rater, rater2) -> Browse:
    return build_browse(project, lead, rater, rater2)
