"""What a finished agreement run changes: quality flags opened, refreshed or kept dismissed,
raters paused where the project asks for it, and low-agreement prompts given extra raters
(adaptive overlap).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.jobs import JobStatus
from labeling import services as labeling_services
from labeling.models import Membership, MemberStatus, Project
from rankings.models import AgreementRun, Flag, FlagStatus, PromptAgreement, RaterScore
from rankings.quality import flags, thresholds

logger = logging.getLogger(__name__)


def on_agreement_run_finished(sender: Any, *, run: AgreementRun, **kwargs: Any) -> dict[str, int]:
    """Receiver of ``runs.services.agreement_run_finished`` (connected in the app's ready)."""
    return apply_run_findings(run=run)


def apply_run_findings(*, run: AgreementRun) -> dict[str, int]:
    """Open and refresh flags, auto-pause, and request extra raters from a finished run.

    Called once a run's scores are stored (``on_agreement_run_finished``). Idempotent: the
    same run applied twice opens nothing new (open flags are refreshed in place, and a
    prompt given an extra rater waits for that rater before it can be reopened again).
    A run older than the project's newest finished run changes nothing.

    Dismissed flags: a rule that fires again for the same rater does not reopen the flag
    unless the evidence is clearly worse than when the lead closed it (``flags.clearly_worse``:
    the number moved ``reopen_when_worse_by`` further the bad way, or the evidence doubled);
    then a new open flag is created and the dismissed one stays as history. Flags closed by
    pausing the rater are treated the same way once the rater is back.
    """
    summary = {
        "flags_opened": 0,
        "flags_updated": 0,
        "flags_cleared": 0,
        "flags_kept_dismissed": 0,
        "raters_paused": 0,
        "prompts_reopened": 0,
    }
    with transaction.atomic():
        # One run's findings at a time per project: two runs finishing together must not
        # both open the same flag.
        project = Project.objects.select_for_update().get(pk=run.project_id)
        newer = AgreementRun.objects.filter(
            project=project, status=JobStatus.DONE, pk__gt=run.pk
        ).exists()
        if newer:
            return summary
        _apply_flags(project=project, run=run, summary=summary)
        summary["prompts_reopened"] = _request_extra_raters(project=project, run=run)
    return summary


def _apply_flags(*, project: Project, run: AgreementRun, summary: dict[str, int]) -> None:
    quality_rules = thresholds.rules_from_settings(project.quality_settings)
    if quality_rules.problems:
        logger.warning(
            "project %s quality settings ignored: %s", project.pk, "; ".join(quality_rules.problems)
        )
    scores = list(RaterScore.objects.filter(run=run))
    if not scores:
        return
    context = flags.project_context(
        (flags.RaterEvidence.of(score) for score in scores), quality_rules
    )
    members = {
        membership.user_id: membership
        for membership in Membership.objects.filter(project=project).select_related("user")
    }
    open_flags = {
        (flag.rater_id, flag.code): flag
        for flag in Flag.objects.filter(project=project, status=FlagStatus.OPEN)
    }
    last_closed: dict[tuple[int, str], Flag] = {}
    for flag in Flag.objects.filter(project=project).exclude(status=FlagStatus.OPEN).order_by("id"):
        last_closed[(flag.rater_id, flag.code)] = flag  # the newest wins

    now = timezone.now()
    to_create: list[Flag] = []
    to_update: list[Flag] = []
    to_pause: set[int] = set()
    for score in scores:
        evidence = flags.RaterEvidence.of(score)
        for finding in flags.rater_findings(evidence, quality_rules, context):
            key = (score.rater_id, finding.code)
            details = {**finding.evidence, "run_id": run.pk, "holds": finding.fired}
            existing = open_flags.get(key)
            if existing is not None:
                existing.evidence, existing.run_id, existing.updated_at = details, run.pk, now
                to_update.append(existing)
                summary["flags_updated" if finding.fired else "flags_cleared"] += 1
            elif finding.fired:
                closed = last_closed.get(key)
                if closed is not None and not flags.clearly_worse(
                    finding.code, closed.evidence, finding.evidence, quality_rules
                ):
                    summary["flags_kept_dismissed"] += 1
                    continue
                flag = Flag(
                    project=project,
                    rater_id=score.rater_id,
                    run_id=run.pk,
                    code=finding.code,
                    evidence=details,
                    created_at=now,
                    updated_at=now,
                )
                to_create.append(flag)
                open_flags[key] = flag
                summary["flags_opened"] += 1
            else:
                continue
            membership = members.get(score.rater_id)
            if (
                finding.fired
                and finding.code in quality_rules.auto_pause
                and membership is not None
                and membership.status == MemberStatus.ACTIVE
            ):
                to_pause.add(score.rater_id)
    Flag.objects.bulk_create(to_create)
    Flag.objects.bulk_update(to_update, ["evidence", "run", "updated_at"])
    for rater_id in sorted(to_pause):
        membership = members[rater_id]
        labeling_services.member_update(
            project=project, username=membership.user.username, status=MemberStatus.PAUSED
        )
        Flag.objects.filter(project=project, rater_id=rater_id, status=FlagStatus.OPEN).update(
            status=FlagStatus.RATER_PAUSED,
            note=f"Paused automatically by agreement run {run.pk}.",
            updated_at=now,
        )
        summary["raters_paused"] += 1


def _request_extra_raters(*, project: Project, run: AgreementRun) -> int:
    """Adaptive overlap: prompts below the project's agreement threshold get one more rater.

    Only prompts whose current overlap (plus extra raters already asked for) is complete:
    a prompt still waiting for its extra rater is not asked for another one.
    """
    threshold = project.adaptive_agreement_threshold
    if threshold is None or not project.max_overlap or project.max_overlap <= project.overlap:
        return 0
    rows = (
        PromptAgreement.objects.filter(
            run=run,
            agreement__lt=threshold,
            prompt__is_gold=False,
            prompt__extra_raters__lt=project.max_overlap - project.overlap,
            n_rankings__gte=project.overlap + F("prompt__extra_raters"),
        )
        .order_by("prompt_id")
        .values_list("prompt_id", "agreement", "n_rankings")
    )
    by_reason: dict[str, list[int]] = defaultdict(list)
    for prompt_id, agreement, n_rankings in rows:
        reason = (
            f"agreement {agreement:.2f} below {threshold:.2f} after {n_rankings} rankings "
            f"(run {run.pk})"
        )
        by_reason[reason].append(prompt_id)
    reopened = 0
    for reason, prompt_ids in by_reason.items():
        reopened += labeling_services.prompts_request_extra_raters(
            project=project, prompt_ids=prompt_ids, reason=reason
        )
    return reopened
