"""A ranked project for the fault tests: enough prompts for an export of many batches."""

from __future__ import annotations

from labeling.models import Project
from tests.factories import RankingFactory
from tests.helpers import import_prompts, sample_records

PROMPTS = 40


def rank_all(project: Project, raters: list) -> int:
    """Every rater ranks every prompt (K=3, two orders); how many rankings."""
    prompts = import_prompts(project, sample_records(PROMPTS))
    orders = ([[0], [1], [2]], [[1], [0], [2]], [[2], [0], [1]])
    count = 0
    for index, prompt in enumerate(prompts):
        for turn, rater in enumerate(raters):
            RankingFactory(prompt=prompt, rater=rater, positions=orders[(index + turn) % 3])
            count += 1
    return count
