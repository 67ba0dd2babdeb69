"""Routing: prompts where the AI judge disagrees with the first human rankings, or with
itself across the two shown orders, get one more human rater through adaptive overlap
(`labeling.services.prompts_request_extra_raters`, up to the project's `max_overlap`); the
prompt keeps the reason, which the lead sees on the prompt pages."""

from __future__ import annotations

from typing import Any

from core.errors import InvalidInput
from labeling import services as labeling_services
from labeling.models import Membership, Project, Prompt
from llm.calibration import pair_labels
from llm.models import CallStatus, JudgeVerdict, ModelEndpoint
from rankings.models import Ranking

DEFAULT_MAX_AGREEMENT = 0.5
REASON_PREFIX = "AI judge "
"""Every routing reason starts so: the Models page lists the prompts the judge reopened."""


def judge_routing_apply(
    *,
    project: Project,
    endpoint: ModelEndpoint,
    max_agreement: float = DEFAULT_MAX_AGREEMENT,
    include_inconsistent: bool = True,
) -> dict[str, Any]:
    """Reopen every judged prompt whose judge agrees with its human rankings on at most
    `max_agreement` of the compared pairs (or whose verdict flipped with the shown order)."""
    if not 0 <= max_agreement <= 1:
        raise InvalidInput("must be between 0 and 1", field="max_agreement")
    if not project.max_overlap or project.max_overlap <= project.overlap:
        raise InvalidInput(
            "adaptive overlap is off: set the project's max_overlap above its overlap first",
            field="max_overlap",
        )
    verdicts = {
        prompt_id: (groups, consistent)
        for prompt_id, groups, consistent in JudgeVerdict.objects.filter(
            endpoint=endpoint, prompt__project=project, status=CallStatus.DONE
        )
        .filter(prompt__is_gold=False, prompt__archived_at__isnull=True)
        .values_list("prompt_id", "groups", "consistent")
    }
    excluded = set(
        Membership.objects.filter(project=project, excluded=True).values_list("user_id", flat=True)
    )
    humans: dict[int, list[list[list[int]]]] = {}
    for prompt_id, rater_id, groups in Ranking.objects.filter(
        project=project, prompt_id__in=list(verdicts), is_repeat=False
    ).values_list("prompt_id", "rater_id", "groups"):
        if rater_id not in excluded:
            humans.setdefault(prompt_id, []).append(groups)
    reopened = []
    for prompt_id, (groups, consistent) in sorted(verdicts.items()):
        reason = _reason(endpoint, groups, consistent, humans.get(prompt_id, []), max_agreement,
                         include_inconsistent)  # fmt: skip
        if reason and labeling_services.prompts_request_extra_raters(
            project=project, prompt_ids=[prompt_id], reason=reason
        ):
            reopened.append({"prompt_id": prompt_id, "reason": reason})
    return {"reopened": len(reopened), "prompts": reopened}


def judge_reopened_prompts(*, project: Project, limit: int = 50) -> list[Prompt]:
    """Prompts whose extra raters the judge asked for (newest reason kept), by id."""
    return list(
        Prompt.objects.filter(project=project, extra_reason__startswith=REASON_PREFIX)
        .order_by("pk")
        .only("pk", "external_id", "extra_raters", "extra_reason", "is_complete")[:limit]
    )


def _reason(
    endpoint: ModelEndpoint,
    judge: list[list[int]],
    consistent: bool | None,
    humans: list[list[list[int]]],
    max_agreement: float,
    include_inconsistent: bool,
) -> str:
    if not humans:
        return ""
    ids = sorted(item for group in judge for item in group)
    judge_labels = pair_labels(judge, ids)
    agree = total = 0
    for ranking in humans:
        for pair, label in pair_labels(ranking, ids).items():
            if pair in judge_labels:
                agree += judge_labels[pair] == label
                total += 1
    if total and agree / total <= max_agreement:
        return (
            f"{REASON_PREFIX}{endpoint.name} disagrees with the first {len(humans)} human "
            f"ranking(s): pair agreement {agree / total:.2f}"
        )
    if include_inconsistent and consistent is False:
        return f"{REASON_PREFIX}{endpoint.name} contradicts itself when the order is reversed"
    return ""
