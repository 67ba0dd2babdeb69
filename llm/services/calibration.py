"""Judge calibration: load the judge's verdicts and the human rankings of the same prompts
in bulk, hand them to the pure `llm.calibration`, add what the lead reads beside them."""

from __future__ import annotations

from typing import Any

from labeling.models import Membership, Project, Prompt, Response
from llm.calibration import PromptRankings, calibrate
from llm.models import CallStatus, JudgeVerdict, ModelEndpoint
from llm.services.judge_report import position_summary
from rankings.models import Ranking

TEXT_CHARS = 600


def judge_calibration(
    *, project: Project, endpoint: ModelEndpoint, worst: int = 10
) -> dict[str, Any]:
    verdicts = JudgeVerdict.objects.filter(endpoint=endpoint, prompt__project=project)
    judged = dict(
        verdicts.filter(status=CallStatus.DONE, prompt__archived_at__isnull=True).values_list(
            "prompt_id", "groups"
        )
    )
    excluded = set(
        Membership.objects.filter(project=project, excluded=True).values_list("user_id", flat=True)
    )
    humans: dict[int, dict[int, list[list[int]]]] = {}
    for prompt_id, rater_id, groups in (
        Ranking.objects.filter(project=project, prompt_id__in=list(judged), is_repeat=False)
        .order_by("id")
        .values_list("prompt_id", "rater_id", "groups")
    ):
        if rater_id not in excluded:
            humans.setdefault(prompt_id, {})[rater_id] = groups
    responses: dict[int, list[int]] = {}
    for prompt_id, response_id in (
        Response.objects.filter(prompt_id__in=list(judged))
        .order_by("prompt_id", "position")
        .values_list("prompt_id", "pk")
    ):
        responses.setdefault(prompt_id, []).append(response_id)
    gold = dict(
        Prompt.objects.filter(pk__in=list(judged), is_gold=True).values_list("pk", "gold_ranking")
    )
    units = [
        PromptRankings(
            prompt_id=prompt_id,
            response_ids=responses.get(prompt_id, []),
            judge=groups,
            humans=humans.get(prompt_id, {}),
            gold=gold.get(prompt_id),
        )
        for prompt_id, groups in sorted(judged.items())
    ]
    result = calibrate(units, worst=worst)
    result["endpoint"] = {"id": endpoint.pk, "name": endpoint.name}
    result["position"] = position_summary(verdicts)
    _add_texts(result)
    return result


def _add_texts(result: dict[str, Any]) -> None:
    """The side-by-side view: the prompt and its responses with the judge's and humans'
    rankings (texts are untrusted: pages render them escaped)."""
    rows = result["most_disagreeing"]
    ids = [row["prompt_id"] for row in rows]
    prompts = {p.pk: p for p in Prompt.objects.filter(pk__in=ids)}
    texts: dict[int, dict[int, str]] = {}
    for prompt_id, response_id, text in Response.objects.filter(prompt_id__in=ids).values_list(
        "prompt_id", "pk", "text"
    ):
        texts.setdefault(prompt_id, {})[response_id] = text[:TEXT_CHARS]
    rationales = dict(
        JudgeVerdict.objects.filter(
            prompt_id__in=ids, endpoint_id=result["endpoint"]["id"]
        ).values_list("prompt_id", "rationale")
    )
    for row in rows:
        prompt = prompts[row["prompt_id"]]
        row["external_id"] = prompt.external_id
        last = prompt.messages[-1]["content"] if prompt.messages else ""
        row["prompt"] = str(last)[:TEXT_CHARS]
        row["responses"] = texts.get(prompt.pk, {})
        row["rationale"] = rationales.get(prompt.pk, "")
