"""What a judge run reports: progress, failures, tokens, and the judge's position bias."""

from __future__ import annotations

from typing import Any

from django.db.models import Sum
from django.utils import timezone

from llm.models import CallStatus, JudgeRun, JudgeVerdict


def position_summary(verdicts: Any) -> dict[str, Any]:
    """The judge's position consistency over done verdicts."""
    sums = verdicts.filter(status=CallStatus.DONE).aggregate(
        pairs=Sum("pairs"),
        flipped=Sum("flipped_pairs"),
        first=Sum("first_shown_wins"),
        second=Sum("second_shown_wins"),
    )
    judged = verdicts.filter(status=CallStatus.DONE).count()
    consistent = verdicts.filter(status=CallStatus.DONE, consistent=True).count()
    pairs, flipped = sums["pairs"] or 0, sums["flipped"] or 0
    return {
        "prompts": judged,
        "consistent_prompts": consistent,
        "pairs": pairs,
        "flipped_pairs": flipped,
        "pair_consistency": (1 - flipped / pairs) if pairs else None,
        "position_bias_rate": (flipped / pairs) if pairs else None,
        "first_shown_wins": sums["first"] or 0,
        "second_shown_wins": sums["second"] or 0,
    }


def judge_run_report(*, run: JudgeRun, failures_limit: int = 100) -> dict[str, Any]:
    verdicts = JudgeVerdict.objects.filter(run=run)
    counts = {status: verdicts.filter(status=status).count() for status in CallStatus.values}
    end = run.finished_at or timezone.now()
    return {
        "id": run.pk,
        "status": run.status,
        "error": run.error,
        "endpoint": run.endpoint_id,
        "prompts": run.prompt_selection,
        "progress": {
            "planned": run.planned,
            "done": counts[CallStatus.DONE] + counts[CallStatus.FAILED],
            "succeeded": counts[CallStatus.DONE],
            "failed": counts[CallStatus.FAILED],
        },
        "position": position_summary(verdicts),
        "failures": [
            {"prompt_id": prompt_id, "reason": error}
            for prompt_id, error in verdicts.filter(status=CallStatus.FAILED)
            .order_by("id")
            .values_list("prompt_id", "error")[:failures_limit]
        ],
        "tokens_in": run.tokens_in
        if not run.is_live
        else (verdicts.aggregate(s=Sum("tokens_in"))["s"] or 0),
        "tokens_out": run.tokens_out
        if not run.is_live
        else (verdicts.aggregate(s=Sum("tokens_out"))["s"] or 0),
        "wall_seconds": round((end - run.started_at).total_seconds(), 3)
        if run.started_at
        else None,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
    }
