"""Acting on agreement runs: quality flags, the lead's actions on them, adaptive overlap.

``apply_run_findings`` turns a finished run's rater scores into flags (rules in
``rankings.flags``), pauses raters where the project asks for it, and puts low-agreement
prompts back in the queue for extra raters. The lead's actions (dismiss, pause, exclude) and
the reads behind the quality dashboard and API live here too.
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, F, Prefetch, Q
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound
from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.models import Membership, MemberStatus, Project, Prompt, Response, Role
from rankings import flags as rules
from rankings import selectors
from rankings.models import (
    AgreementRun,
    Flag,
    FlagStatus,
    PromptAgreement,
    Ranking,
    RaterScore,
    RunStatus,
)

logger = logging.getLogger(__name__)

EXCLUSION_TRIGGER = "rater_excluded"


# Findings of a run -------------------------------------------------------------------------


def apply_run_findings(*, run: AgreementRun) -> dict[str, int]:
    """Open and refresh flags, auto-pause, and request extra raters from a finished run.

    Called by ``agreement_run_compute`` once the run's scores are stored. Idempotent: the
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
            project=project, status=RunStatus.DONE, pk__gt=run.pk
        ).exists()
        if newer:
            return summary
        _apply_flags(project=project, run=run, summary=summary)
        summary["prompts_reopened"] = _request_extra_raters(project=project, run=run)
    return summary


def _apply_flags(*, project: Project, run: AgreementRun, summary: dict[str, int]) -> None:
    quality_rules = rules.rules_from_settings(project.quality_settings)
    if quality_rules.problems:
        logger.warning(
            "project %s quality settings ignored: %s", project.pk, "; ".join(quality_rules.problems)
        )
    scores = list(RaterScore.objects.filter(run=run))
    if not scores:
        return
    # Newer runs store these counts with the scores; older ones need them counted here.
    task_counts: dict[int, tuple[int, int]] = {}
    if not all(_has_task_counts(score) for score in scores):
        task_counts = _gold_and_repeat_rankings(project=project, up_to_id=run.last_ranking_id)
    context = _project_context(project=project, scores=scores, quality_rules=quality_rules)
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
        evidence = _rater_evidence(score, task_counts.get(score.rater_id, (0, 0)))
        for finding in rules.rater_findings(evidence, quality_rules, context):
            key = (score.rater_id, finding.code)
            details = {**finding.evidence, "run_id": run.pk, "holds": finding.fired}
            existing = open_flags.get(key)
            if existing is not None:
                existing.evidence, existing.run_id, existing.updated_at = details, run.pk, now
                to_update.append(existing)
                summary["flags_updated" if finding.fired else "flags_cleared"] += 1
            elif finding.fired:
                closed = last_closed.get(key)
                if closed is not None and not rules.clearly_worse(
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


TASK_COUNT_KEYS = ("gold_rankings", "repeat_rankings")


def _has_task_counts(score: RaterScore) -> bool:
    return all(isinstance(score.details.get(key), int) for key in TASK_COUNT_KEYS)


def _rater_evidence(score: RaterScore, task_counts: tuple[int, int]) -> rules.RaterEvidence:
    """The rule inputs: score columns, plus counts the run keeps in ``details`` when it has them."""
    details = score.details or {}
    gold_rankings, repeat_rankings = (
        (details["gold_rankings"], details["repeat_rankings"])
        if _has_task_counts(score)
        else task_counts
    )
    chance = details.get("straight_lining_chance")
    timed = details.get("timed_rankings")
    return rules.RaterEvidence(
        rankings=score.rankings,
        agreement=score.agreement,
        agreement_low=score.agreement_low,
        agreement_high=score.agreement_high,
        compared_pairs=score.compared_pairs,
        gold_accuracy=score.gold_accuracy,
        gold_pairs=score.gold_pairs,
        gold_rankings=gold_rankings,
        self_consistency=score.self_consistency,
        repeat_pairs=score.repeat_pairs,
        repeat_rankings=repeat_rankings,
        first_shown_win_rate=score.first_shown_win_rate,
        position_p_value=score.position_p_value,
        position_pairs=score.position_pairs,
        straight_lining_rate=score.straight_lining_rate,
        straight_lining_chance=float(chance) if isinstance(chance, int | float) else None,
        median_seconds=score.median_seconds,
        speed_ratio=score.speed_ratio,
        timed_rankings=timed if isinstance(timed, int) else None,
    )


def _gold_and_repeat_rankings(*, project: Project, up_to_id: int) -> dict[int, tuple[int, int]]:
    """Per rater: rankings of gold prompts and repeats, so a flag never rests on one task."""
    gold_prompts = list(
        Prompt.objects.filter(project=project, is_gold=True).values_list("pk", flat=True)
    )
    rows = (
        Ranking.objects.filter(project=project, id__lte=up_to_id)
        .filter(Q(is_repeat=True) | Q(prompt_id__in=gold_prompts))
        .values("rater_id")
        .annotate(
            gold=Count("id", filter=Q(is_repeat=False, prompt_id__in=gold_prompts)),
            repeats=Count("id", filter=Q(is_repeat=True)),
        )
        .values_list("rater_id", "gold", "repeats")
    )
    return {rater_id: (gold, repeats) for rater_id, gold, repeats in rows}


def _project_context(
    *, project: Project, scores: list[RaterScore], quality_rules: rules.QualityRules
) -> rules.ProjectContext:
    min_pairs = quality_rules.thresholds[rules.LOW_AGREEMENT]["min_pairs"]
    judged = [
        score.agreement
        for score in scores
        if score.agreement is not None and score.compared_pairs >= min_pairs
    ]
    # A median of two says little about the typical rater; chance level decides then.
    median = statistics.median(judged) if len(judged) >= 3 else None
    if all(isinstance(score.details.get("straight_lining_chance"), float) for score in scores):
        return rules.ProjectContext(median_agreement=median)  # each rater's own chance rate
    return rules.ProjectContext(
        median_agreement=median,
        straight_lining_chance=rules.straight_lining_chance(response_counts(project=project)),
    )


def response_counts(*, project: Project) -> dict[int, int]:
    """How many prompts have K responses, for each K, from one grouped query.

    Positions are 0..K-1, so the prompts with exactly K responses are those with a response
    at position K-1 minus those with one at position K.
    """
    at_position = dict(
        Response.objects.filter(prompt__project=project, prompt__is_gold=False)
        .values("position")
        .annotate(n=Count("id"))
        .values_list("position", "n")
    )
    counts = {}
    for position, n in at_position.items():
        exactly = n - at_position.get(position + 1, 0)
        if exactly > 0:
            counts[position + 1] = exactly
    return counts


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


# The lead's actions ----------------------------------------------------------------------------


def flag_for_user(*, user: User, flag_id: int, lead_only: bool = True) -> Flag:
    """The flag if the user may act on it (lead) or see it; NotFound / NotAllowed otherwise."""
    flag = Flag.objects.select_related("project", "rater", "resolved_by").filter(pk=flag_id).first()
    if flag is None:
        raise NotFound("flag not found")
    try:
        labeling_selectors.project_for_user(
            user=user,
            project_id=flag.project_id,
            roles=labeling_selectors.LEAD_ROLES if lead_only else labeling_selectors.DATA_ROLES,
        )
    except NotFound:
        raise NotFound("flag not found") from None
    return flag


def _locked(flag: Flag) -> Flag:
    return Flag.objects.select_for_update().select_related("project", "rater").get(pk=flag.pk)


def flag_dismiss(*, flag: Flag, by: User, note: str = "") -> Flag:
    """The lead looked and disagrees: the flag closes; dismissing twice is harmless."""
    note = _clean_note(note)
    with transaction.atomic():
        flag = _locked(flag)
        if flag.status == FlagStatus.DISMISSED:
            return flag
        if flag.status == FlagStatus.RATER_PAUSED:
            raise Conflict(
                "the rater was already paused for this flag; resume them instead",
                code="rater_paused",
            )
        flag.status, flag.resolved_by, flag.updated_at = FlagStatus.DISMISSED, by, timezone.now()
        flag.note = note
        flag.save(update_fields=["status", "resolved_by", "note", "updated_at"])
    return flag


def flag_pause_rater(*, flag: Flag, by: User, note: str = "") -> Flag:
    """Pause the flagged rater; every open flag of theirs in the project closes with it."""
    note = _clean_note(note)
    with transaction.atomic():
        flag = _locked(flag)
        rater_pause(project=flag.project, username=flag.rater.username, by=by, note=note)
        if flag.status != FlagStatus.RATER_PAUSED:  # e.g. dismissed earlier, paused now
            flag.status, flag.resolved_by, flag.updated_at = (
                FlagStatus.RATER_PAUSED,
                by,
                timezone.now(),
            )
            flag.note = note or flag.note
            flag.save(update_fields=["status", "resolved_by", "note", "updated_at"])
        flag.refresh_from_db()
    return flag


def flag_exclude_rater(*, flag: Flag, by: User, note: str = "") -> Flag:
    """Leave the rater's rankings out of agreement and exports, and pause them.

    Pausing goes with excluding: work that will not be used should not be collected, and
    it closes the flag (a flag has no "excluded" status). A new agreement run is queued.
    """
    note = _clean_note(note) or "Rankings excluded."
    with transaction.atomic():
        rater_set_excluded(project=flag.project, username=flag.rater.username, excluded=True)
        return flag_pause_rater(flag=flag, by=by, note=note)


def rater_pause(*, project: Project, username: str, by: User, note: str = "") -> Membership:
    """Pause a rater (no more tasks, live leases released) and close their open flags."""
    with transaction.atomic():
        membership = labeling_services.member_update(
            project=project, username=username, status=MemberStatus.PAUSED
        )
        Flag.objects.filter(
            project=project, rater_id=membership.user_id, status=FlagStatus.OPEN
        ).update(
            status=FlagStatus.RATER_PAUSED,
            resolved_by=by,
            note=_clean_note(note) or "Rater paused.",
            updated_at=timezone.now(),
        )
    return membership


def rater_resume(*, project: Project, username: str) -> Membership:
    return labeling_services.member_update(
        project=project, username=username, status=MemberStatus.ACTIVE
    )


def rater_set_excluded(*, project: Project, username: str, excluded: bool) -> Membership:
    """Leave a rater's rankings out of (or back in) agreement and exports; queue a new run.

    Nothing is deleted. The run is queued on commit, so agreement reflects the change.
    """
    from rankings import services  # services imports this module for the run findings

    with transaction.atomic():
        before = Membership.objects.filter(project=project, user__username=username).first()
        membership = labeling_services.member_update(
            project=project, username=username, excluded=excluded
        )
        if before is not None and before.excluded != excluded:
            services.agreement_run_request(project=project, trigger=EXCLUSION_TRIGGER)
    return membership


def _clean_note(note: Any) -> str:
    if note is None:
        return ""
    if not isinstance(note, str):
        raise InvalidInput("note must be text", field="note")
    note = note.strip()
    if len(note) > 500:
        raise InvalidInput("note must be at most 500 characters", field="note")
    return note


# Reads for the dashboard and the API ---------------------------------------------------------


@dataclass
class RaterRow:
    """One rater of the project: membership, latest scores (if any) and flags."""

    username: str
    role: str
    status: str
    excluded: bool
    score: RaterScore | None
    rankings: int
    flags: list[Flag] = field(default_factory=list)

    @property
    def open_flags(self) -> list[Flag]:
        return [flag for flag in self.flags if flag.status == FlagStatus.OPEN]

    def __getattr__(self, name: str) -> Any:
        # Scores read straight through (row.agreement, row.speed_ratio…), None without a run.
        if name not in SCORE_FIELDS:
            raise AttributeError(name)
        return getattr(self.score, name) if self.score is not None else None


SCORE_FIELDS = frozenset(
    {
        "agreement",
        "agreement_low",
        "agreement_high",
        "compared_pairs",
        "gold_accuracy",
        "gold_pairs",
        "self_consistency",
        "repeat_pairs",
        "first_shown_win_rate",
        "position_p_value",
        "position_pairs",
        "straight_lining_rate",
        "median_seconds",
        "speed_ratio",
        "tie_rate",
        "longer_win_rate",
    }
)


# Sort keys for the rater table: query value → (label, key on a row, lowest first by default).
RATER_SORTS: dict[str, tuple[str, str]] = {
    "username": ("Rater", "username"),
    "rankings": ("Rankings", "rankings"),
    "agreement": ("Agreement", "agreement"),
    "gold_accuracy": ("Gold accuracy", "gold_accuracy"),
    "self_consistency": ("Self-consistency", "self_consistency"),
    "position_bias": ("Position bias", "first_shown_win_rate"),
    "straight_lining": ("Straight-lining", "straight_lining_rate"),
    "speed": ("Speed", "speed_ratio"),
    "flags": ("Flags", "open_flag_count"),
}
DEFAULT_RATER_SORT = "agreement"


def parse_rater_sort(value: str | None) -> tuple[str, bool]:
    """``"-speed"`` → ("speed", descending); unknown keys fall back to the default."""
    value = (value or "").strip()
    descending = value.startswith("-")
    key = value.lstrip("-")
    if key not in RATER_SORTS:
        return DEFAULT_RATER_SORT, False
    return key, descending


def sort_rater_rows(rows: list[RaterRow], *, sort: str, descending: bool) -> list[RaterRow]:
    """Sorted by the key, rows without a value last either way, then by username."""
    attribute = RATER_SORTS[sort][1]

    def value_of(row: RaterRow) -> Any:
        if attribute == "open_flag_count":
            return len(row.open_flags)
        return getattr(row, attribute)

    present = [row for row in rows if value_of(row) is not None]
    missing = [row for row in rows if value_of(row) is None]
    present.sort(key=lambda row: row.username)
    present.sort(key=value_of, reverse=descending)
    missing.sort(key=lambda row: row.username)
    return present + missing


def rater_rows(
    *,
    project: Project,
    run: AgreementRun | None,
    sort: str = DEFAULT_RATER_SORT,
    descending: bool = False,
    flags: list[Flag] | None = None,
) -> list[RaterRow]:
    """A row per rater (members with the rater role, and anyone the run scored or flagged).

    At most four queries whatever the number of raters: memberships, scores, flags (unless
    given, e.g. by a page that shows them anyway), and the ranking counts of raters the run
    did not score (excluded ones), only when there are such raters.
    """
    memberships = {
        membership.user_id: membership
        for membership in Membership.objects.filter(project=project).select_related("user")
    }
    scores = {
        score.rater_id: score
        for score in (RaterScore.objects.filter(run=run) if run is not None else [])
    }
    if flags is None:
        flags = project_flags(project=project)
    flags_by_rater: dict[int, list[Flag]] = defaultdict(list)
    for flag in flags:
        flags_by_rater[flag.rater_id].append(flag)
    shown = [
        user_id
        for user_id, membership in memberships.items()
        if membership.role == Role.RATER or user_id in scores or user_id in flags_by_rater
    ]
    unscored = [user_id for user_id in shown if user_id not in scores]
    counted = dict(
        Ranking.objects.filter(project=project, is_repeat=False, rater_id__in=unscored)
        .values("rater_id")
        .annotate(n=Count("id"))
        .values_list("rater_id", "n")
        if unscored
        else []
    )
    rows = []
    for user_id in shown:
        membership = memberships[user_id]
        score = scores.get(user_id)
        rows.append(
            RaterRow(
                username=membership.user.username,
                role=membership.role,
                status=membership.status,
                excluded=membership.excluded,
                score=score,
                rankings=score.rankings if score is not None else counted.get(user_id, 0),
                flags=flags_by_rater.get(user_id, []),
            )
        )
    return sort_rater_rows(rows, sort=sort, descending=descending)


def project_flags(*, project: Project, status: str | None = None) -> list[Flag]:
    """The project's flags (all, or with one status), last touched first, raters loaded."""
    flags = Flag.objects.filter(project=project).select_related("rater", "resolved_by")
    if status:
        if status not in FlagStatus.values:
            raise InvalidInput(f"status must be one of {FlagStatus.values}", field="status")
        flags = flags.filter(status=status)
    return list(flags.order_by("-updated_at", "-id"))


@dataclass(frozen=True)
class LabelledResponse:
    id: int
    label: str
    text: str
    model: str


@dataclass(frozen=True)
class RankingView:
    id: int
    rater: str
    excluded: bool
    groups: list[list[int]]
    labels: list[list[str]]
    seconds: float | None
    rationale: str


@dataclass(frozen=True)
class PromptReview:
    """A prompt with its responses labelled A, B… (import order) and its rankings."""

    prompt: Prompt
    agreement: float | None
    n_rankings: int
    consensus: list[list[int]]
    consensus_labels: list[list[str]]
    responses: list[LabelledResponse]
    rankings: list[RankingView]

    @property
    def extra_raters(self) -> int:
        return self.prompt.extra_raters

    @property
    def extra_reason(self) -> str:
        return self.prompt.extra_reason


def response_label(position: int) -> str:
    return chr(ord("A") + position)


def low_agreement_prompts(
    *, project: Project, run: AgreementRun | None, limit: int = 5
) -> list[PromptReview]:
    """The run's lowest-agreement prompts (gold left out), rankings side by side.

    Three queries: agreement rows with prompts, their responses, their rankings with raters.
    Rankings of excluded raters are shown, marked, since the lead may want to see them.
    """
    if run is None:
        return []
    rows = list(
        PromptAgreement.objects.filter(run=run, agreement__isnull=False, prompt__is_gold=False)
        .select_related("prompt")
        .prefetch_related(
            Prefetch("prompt__responses", queryset=Response.objects.order_by("position")),
            Prefetch(
                "prompt__rankings",
                queryset=Ranking.objects.filter(is_repeat=False)
                .select_related("rater")
                .order_by("id"),
            ),
        )
        .order_by("agreement", "prompt_id")[:limit]
    )
    excluded = set(selectors.excluded_rater_ids(project=project)) if rows else set()
    return [_prompt_review(row, excluded) for row in rows]


def _prompt_review(row: PromptAgreement, excluded: set[int]) -> PromptReview:
    prompt = row.prompt
    responses = [
        LabelledResponse(
            id=response.pk,
            label=response_label(response.position),
            text=response.text,
            model=response.model_name,
        )
        for response in prompt.responses.all()
    ]
    label_of = {response.id: response.label for response in responses}

    def labelled(groups: Iterable[Iterable[Any]]) -> list[list[str]]:
        return [
            sorted(label_of.get(int(response_id), "?") for response_id in group) for group in groups
        ]

    return PromptReview(
        prompt=prompt,
        agreement=row.agreement,
        n_rankings=row.n_rankings,
        consensus=row.consensus,
        consensus_labels=labelled(row.consensus),
        responses=responses,
        rankings=[
            RankingView(
                id=ranking.pk,
                rater=ranking.rater.username,
                excluded=ranking.rater_id in excluded,
                groups=ranking.groups,
                labels=labelled(ranking.groups),
                seconds=ranking.seconds,
                rationale=ranking.rationale,
            )
            for ranking in prompt.rankings.all()
        ],
    )


def prompts_with_extra_raters(*, project: Project, limit: int = 20) -> tuple[list[Prompt], int]:
    """Prompts adaptive overlap reopened, most extra raters first, and how many there are."""
    prompts = Prompt.objects.filter(project=project, extra_raters__gt=0)
    total = prompts.count()
    shown = list(prompts.order_by("-extra_raters", "id")[:limit]) if total else []
    return shown, total
