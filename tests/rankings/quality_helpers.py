"""Rows for rater-quality tests, built directly: finished runs, rater scores, rankings.

The flag and action tests do not depend on how the metrics are computed, only on what a
run stored, so they write RaterScore / PromptAgreement rows themselves.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from core.jobs import JobStatus
from labeling.models import Project, Prompt
from rankings.models import AgreementRun, PromptAgreement, Ranking, RaterScore
from tests.factories import RankingFactory

# What a careful rater's score looks like: no rule fires.
CAREFUL_SCORE: dict[str, Any] = {
    "rankings": 40,
    "agreement": 0.82,
    "agreement_low": 0.78,
    "agreement_high": 0.86,
    "compared_pairs": 400,
    "first_shown_win_rate": 0.52,
    "position_p_value": 0.6,
    "position_pairs": 120,
    "straight_lining_rate": 0.05,
    "straight_lining_chance": 1 / 24,  # K = 4
    "median_seconds": 40.0,
    "speed_ratio": 1.0,
    "tie_rate": 0.1,
    "longer_win_rate": 0.55,
}


def done_run(project: Project, **fields: Any) -> AgreementRun:
    last = Ranking.objects.filter(project=project).order_by("-id").first()
    values: dict[str, Any] = {
        "project": project,
        "status": JobStatus.DONE,
        "finished_at": timezone.now(),
        "last_ranking_id": last.pk if last else 0,
        "metrics": {"pairwise_agreement": 0.7, "n_raters": 3},
    }
    values.update(fields)
    return AgreementRun.objects.create(**values)


def score(run: AgreementRun, rater, **fields: Any) -> RaterScore:
    """A stored score: the careful rater's numbers with ``fields`` changed. Every ranking is
    timed unless ``timed_rankings`` says otherwise."""
    values = {**CAREFUL_SCORE, **fields}
    values.setdefault("timed_rankings", values["rankings"])
    return RaterScore.objects.create(run=run, rater=rater, **values)


def make_ranking(
    project: Project,
    prompt: Prompt,
    rater,
    *,
    groups: list[list[int]] | None = None,
    is_repeat: bool = False,
    seconds: float | None = 30.0,
    rationale: str = "",
) -> Ranking:
    """A submitted assignment and its ranking, without going through the queue."""
    assert prompt.project_id == project.pk
    extra = {} if groups is None else {"groups": groups}
    return RankingFactory.create(
        prompt=prompt,
        rater=rater,
        is_repeat=is_repeat,
        seconds=seconds,
        rationale=rationale,
        **extra,
    )


def prompt_row(run: AgreementRun, prompt: Prompt, agreement: float | None, n_rankings: int):
    response_ids = list(prompt.responses.order_by("position").values_list("id", flat=True))
    return PromptAgreement.objects.create(
        run=run,
        prompt=prompt,
        n_rankings=n_rankings,
        agreement=agreement,
        consensus=[[response_id] for response_id in response_ids],
    )
