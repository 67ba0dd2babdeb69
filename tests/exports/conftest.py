"""Export test fixtures: a private export folder and hand-made rankings in the database."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.utils import timezone

from labeling.models import Prompt
from rankings.models import Ranking
from tests.factories import RankingFactory


@pytest.fixture(autouse=True)
def export_folder(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "exports")},
        },
    }
    return tmp_path / "exports"


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
        return RankingFactory(
            prompt=prompt,
            rater=rater,
            positions=positions,
            strength=strength,
            is_repeat=is_repeat,
            created_at=created_at or timezone.now(),
        )

    return make
