"""A small project whose models' quality is known, ranked through the database."""

from __future__ import annotations

import random

from labeling.models import Membership, Project, Prompt
from rankings.models import Ranking
from tests.helpers import import_prompts, response_ids
from tests.rankings.quality_helpers import make_ranking

MODELS = ("alpha", "beta", "gamma")  # best first
# Answer lengths by model: gamma, the weakest, is the most verbose.
LENGTHS = {"alpha": 300, "beta": 250, "gamma": 900}


def leaderboard_records(count: int, *, seed: int = 0, prefix: str = "board") -> list[dict]:
    """Prompts with one response per model, in a random import order per prompt."""
    rng = random.Random(seed)
    records = []
    for index in range(count):
        models = list(MODELS)
        rng.shuffle(models)
        records.append(
            {
                "external_id": f"{prefix}-{index}",
                "prompt": f"Question {index}",
                "responses": [
                    {"text": "x" * (LENGTHS[model] + rng.randrange(50)), "model": model}
                    for model in models
                ],
            }
        )
    return records


def model_order_groups(prompt: Prompt, order: tuple[str, ...]) -> list[list[int]]:
    """Tie groups (one response each) putting the prompt's responses in ``order`` of models."""
    by_model = dict(prompt.responses.values_list("model_name", "id"))
    return [[by_model[model]] for model in order]


def rank_by_quality(
    project: Project, raters: list, prompts: list[Prompt], *, seed: int = 0, noise: float = 0.2
) -> list[Ranking]:
    """Each rater ranks each prompt best-first, swapping two neighbours now and then."""
    rng = random.Random(seed)
    rankings = []
    for prompt in prompts:
        assert len(response_ids(prompt)) == len(MODELS)
        for rater in raters:
            order = list(MODELS)
            if rng.random() < noise:
                position = rng.randrange(len(order) - 1)
                order[position], order[position + 1] = order[position + 1], order[position]
            groups = model_order_groups(prompt, tuple(order))
            rankings.append(make_ranking(project, prompt, rater, groups=groups))
    return rankings


def exclude(project: Project, user) -> None:
    Membership.objects.filter(project=project, user=user).update(excluded=True)


__all__ = ["import_prompts"]
