"""Export test fixtures: hand-made rankings in the database (the private export folder is
every test's, see tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.utils import timezone

from labeling.models import Prompt
from rankings.models import Ranking
from tests.exports.rated import RECORDS
from tests.factories import RankingFactory
from tests.helpers import import_prompts


@pytest.fixture
def make_ranking() -> Callable[..., Ranking]:
    """A submitted ranking of `prompt` by `rater`; groups name response positions (0-based)."""

    def make(
        prompt: Prompt,
        rater,
        positions: list[list[int]],
        *,
        strength: int | None = None,
        created_at=None,
        is_repeat: bool = False,
    ) -> Ranking:
        return RankingFactory.create(
            prompt=prompt,
            rater=rater,
            positions=positions,
            strength=strength,
            is_repeat=is_repeat,
            created_at=created_at or timezone.now(),
        )

    return make


@pytest.fixture
def rated(project, rater, rater2, make_user, add_member, make_ranking):
    """The two `RECORDS` prompts, each ranked by three raters (one tie)."""
    prompts = import_prompts(project, RECORDS)
    rater3 = add_member(make_user("rater3"))
    for prompt in prompts:
        make_ranking(prompt, rater, [[2], [0], [1]])
        make_ranking(prompt, rater2, [[0], [2], [1]])
        make_ranking(prompt, rater3, [[2, 0], [1]])
    return project
