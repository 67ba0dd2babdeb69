"""Reads behind the quality dashboard and API: a row per rater (membership, latest scores,
flags), the project's flags, the lowest-agreement prompts with their rankings side by side,
and the prompts adaptive overlap reopened."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Prefetch

from core.errors import InvalidInput
from labeling.models import Membership, Project, Prompt, Response, Role
from rankings.models import AgreementRun, Flag, FlagStatus, PromptAgreement, Ranking, RaterScore
from rankings.quality.decisions import ReliabilityDecision, reliability_decision
from rankings.quality.flags import RaterEvidence
from rankings.quality.thresholds import rules_from_settings
from rankings.runs.data import excluded_rater_ids
from rankings.stats.registry import RATER_STATISTICS, STATISTICS


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
    decision: ReliabilityDecision | None = None
    """How sure the sequential test is about the rater (None without a score)."""

    @property
    def open_flags(self) -> list[Flag]:
        return [flag for flag in self.flags if flag.status == FlagStatus.OPEN]

    def __getattr__(self, name: str) -> Any:
        # Every registry statistic reads straight through (row.agreement, row.speed_ratio…),
        # None without a score.
        stat = STATISTICS.get(name)
        if stat is None:
            raise AttributeError(name)
        return getattr(self.score, stat.column) if self.score is not None else None


# Sort keys for the rater table and the API: query value → (label, key on a row), lowest
# first by default. The statistics' keys come from their dashboard columns in the registry.
RATER_SORTS: dict[str, tuple[str, str]] = {
    "username": ("Rater", "username"),
    **{
        stat.dashboard.sort: (stat.label, stat.name)
        for stat in RATER_STATISTICS
        if stat.dashboard is not None and stat.dashboard.sort is not None
    },
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
    rules = rules_from_settings(project.quality_settings)
    rows = []
    for user_id in shown:
        membership = memberships[user_id]
        score = scores.get(user_id)
        decision = (
            reliability_decision(RaterEvidence.of(score), rules) if score is not None else None
        )
        rows.append(
            RaterRow(
                username=membership.user.username,
                role=membership.role,
                status=membership.status,
                excluded=membership.excluded,
                score=score,
                rankings=score.rankings if score is not None else counted.get(user_id, 0),
                flags=flags_by_rater.get(user_id, []),
                decision=decision,
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
    excluded = set(excluded_rater_ids(project=project)) if rows else set()
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
