"""Export test fixtures: a private export folder and hand-made rankings in the database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.models import Assignment, AssignmentStatus, Prompt
from rankings.models import Ranking
from tests.helpers import response_ids


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
        ids = response_ids(prompt)
        groups = [[ids[position] for position in group] for group in positions]
        now = created_at or timezone.now()
        assignment = Assignment.objects.create(
            project=prompt.project,
            prompt=prompt,
            rater=rater,
            status=AssignmentStatus.SUBMITTED,
            shown_order=ids,
            is_repeat=is_repeat,
            leased_at=now - timedelta(minutes=1),
            expires_at=now + timedelta(minutes=9),
            finished_at=now,
        )
        return Ranking.objects.create(
            assignment=assignment,
            project=prompt.project,
            prompt=prompt,
            rater=rater,
            groups=groups,
            strength=strength,
            is_repeat=is_repeat,
            created_at=now,
        )

    return make
