"""One prompt as the lead sees it: the conversation, its responses in import order, every
ranking and skip, the latest run's consensus with per-pair votes, and its history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.errors import NotFound
from labeling import selectors as labeling_selectors
from labeling.models import (
    Assignment,
    AssignmentStatus,
    AuditAction,
    AuditEvent,
    Membership,
    Project,
    Prompt,
)
from labeling.services import prompt_edit_refusal
from rankings.models import AgreementRun, PromptAgreement, Ranking
from rankings.prompts.browse import flagged_rater_ids, prompt_state
from rankings.prompts.extras import PromptExtraView, prompt_extras
from rankings.prompts.pairs import PairVotes, pair_votes, pairs_matching
from rankings.prompts.query import STATES
from rankings.runs import selectors as run_selectors

HISTORY_ACTIONS = (
    AuditAction.GOLD_SET,
    AuditAction.GOLD_CLEAR,
    AuditAction.PROMPTS_ARCHIVE,
    AuditAction.PROMPTS_UNARCHIVE,
    AuditAction.PROMPTS_REOPEN,
    AuditAction.RESPONSES_EDIT,
)
HISTORY_SCAN = 2000


def response_label(position: int) -> str:
    return chr(ord("A") + position)


@dataclass(frozen=True)
class ResponseView:
    id: int
    label: str
    position: int
    external_id: str
    model: str
    text: str
    metadata: dict[str, Any]
    consensus_score: float | None
    consensus_place: int | None  # 1 for the consensus best
    gold_place: int | None


@dataclass(frozen=True)
class RankingView:
    id: int
    rater: str
    shown_order: list[int]
    shown_labels: list[str]
    groups: list[list[int]]
    labels: list[list[str]]
    ratings: dict[str, Any]
    ratings_lines: list[str]  # "A: helpful 5, unsafe yes", in import order
    rationale: str
    seconds: float | None
    strength: int | None
    is_repeat: bool
    is_gold: bool
    gold_match: float | None
    excluded: bool
    flagged: bool
    created_at: datetime
    revised: bool


@dataclass(frozen=True)
class SkipView:
    rater: str
    reason: str
    at: datetime | None


@dataclass(frozen=True)
class PairView:
    first: str
    second: str
    votes: PairVotes


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    actor: str
    action: str
    label: str
    lines: list[str]


@dataclass(frozen=True)
class PromptDetail:
    prompt: Prompt
    project: Project
    state: str
    responses: list[ResponseView]
    rankings: list[RankingView]
    skips: list[SkipView]
    run: AgreementRun | None
    agreement: float | None
    consensus: list[list[int]]
    consensus_labels: list[list[str]]
    consensus_method: str
    consensus_rankings: int
    pairs: list[PairView]
    history: list[HistoryEntry]
    edit_refusal: str | None
    wanted: int
    extras: list[PromptExtraView] = field(default_factory=list)
    """Panels other apps add (`rankings.prompts.extras`), e.g. the AI judge's verdicts."""

    @property
    def gold_labels(self) -> list[list[str]]:
        return self.labelled(self.prompt.gold_ranking or [])

    def labelled(self, groups: list[list[int]]) -> list[list[str]]:
        label_of = {response.id: response.label for response in self.responses}
        return [sorted(label_of.get(int(member), "?") for member in group) for group in groups]

    @property
    def state_label(self) -> str:
        return STATES[self.state]


def prompt_for_reader(*, user: Any, prompt_id: int, roles: tuple[str, ...]) -> Prompt:
    """The prompt if the user holds one of `roles` on its project: 404 when the prompt or
    its project is not visible to them, 403 for a member without the role."""
    prompt = Prompt.objects.select_related("project").filter(pk=prompt_id).first()
    if prompt is None:
        raise NotFound("prompt not found")
    labeling_selectors.project_for_user(user=user, project_id=prompt.project_id, roles=roles)
    return prompt


def prompt_detail(*, prompt: Prompt) -> PromptDetail:
    project = prompt.project
    responses = list(prompt.responses.order_by("position"))
    label_of = {response.pk: response_label(response.position) for response in responses}
    run = run_selectors.latest_agreement_run(project=project)
    row = (
        PromptAgreement.objects.filter(run=run, prompt=prompt).first() if run is not None else None
    )
    consensus = [[int(member) for member in group] for group in (row.consensus if row else [])]
    scores = {int(key): value for key, value in (row.scores if row else {}).items()}
    consensus_place = {
        member: place for place, group in enumerate(consensus, 1) for member in group
    }
    gold = prompt.gold_ranking or []
    gold_place = {int(member): place for place, group in enumerate(gold, 1) for member in group}
    excluded = set(
        Membership.objects.filter(project=project, excluded=True).values_list("user_id", flat=True)
    )
    flagged = set(flagged_rater_ids(project=project))
    rankings = list(
        Ranking.objects.filter(prompt=prompt)
        .select_related("rater", "assignment")
        .order_by("created_at", "id")
    )

    def labelled(groups: list[list[int]]) -> list[list[str]]:
        return [sorted(label_of.get(int(member), "?") for member in group) for group in groups]

    ranking_views = [
        RankingView(
            id=ranking.pk,
            rater=ranking.rater.get_username(),
            shown_order=list(ranking.assignment.shown_order),
            shown_labels=[label_of.get(int(pk), "?") for pk in ranking.assignment.shown_order],
            groups=ranking.groups,
            labels=labelled(ranking.groups),
            ratings=ranking.ratings or {},
            ratings_lines=ratings_lines(ranking.ratings or {}, label_of),
            rationale=ranking.rationale,
            seconds=ranking.seconds,
            strength=ranking.strength,
            is_repeat=ranking.is_repeat,
            is_gold=prompt.is_gold,
            gold_match=pairs_matching(ranking.groups, gold) if gold else None,
            excluded=ranking.rater_id in excluded,
            flagged=ranking.rater_id in flagged,
            created_at=ranking.created_at,
            revised=bool(ranking.revisions),
        )
        for ranking in rankings
    ]
    counted = [
        ranking.groups
        for ranking in rankings
        if not ranking.is_repeat and ranking.rater_id not in excluded
    ]
    votes = pair_votes(response_ids=[r.pk for r in responses], rankings=counted)
    assignments = list(
        Assignment.objects.filter(prompt=prompt).select_related("rater").order_by("id")
    )
    worked_on = any(
        not a.is_repeat
        and (
            a.status == AssignmentStatus.SUBMITTED
            or (a.status == AssignmentStatus.LEASED and (not a.is_expired or a.finished_at))
        )
        for a in assignments
    )
    return PromptDetail(
        prompt=prompt,
        project=project,
        state=prompt_state(prompt, worked_on=worked_on),
        responses=[
            ResponseView(
                id=response.pk,
                label=label_of[response.pk],
                position=response.position,
                external_id=response.external_id,
                model=response.model_name,
                text=response.text,
                metadata=response.metadata or {},
                consensus_score=scores.get(response.pk),
                consensus_place=consensus_place.get(response.pk),
                gold_place=gold_place.get(response.pk),
            )
            for response in responses
        ],
        rankings=ranking_views,
        skips=[
            SkipView(rater=a.rater.get_username(), reason=a.skip_reason, at=a.finished_at)
            for a in assignments
            if a.status == AssignmentStatus.SKIPPED
        ],
        run=run,
        agreement=row.agreement if row else None,
        consensus=consensus,
        consensus_labels=labelled(consensus),
        consensus_method=row.method if row else "",
        consensus_rankings=row.n_rankings if row else 0,
        pairs=[PairView(label_of[v.first], label_of[v.second], v) for v in votes],
        history=prompt_history(prompt=prompt),
        edit_refusal=prompt_edit_refusal(prompt=prompt),
        wanted=project.overlap + prompt.extra_raters,
        extras=prompt_extras(prompt=prompt, labels=label_of),
    )


def ratings_lines(ratings: dict[str, Any], label_of: dict[int, str]) -> list[str]:
    lines = []
    for key in sorted(ratings, key=lambda k: label_of.get(int(k), "?") if k.isdigit() else k):
        given = ratings[key]
        label = label_of.get(int(key), "?") if key.isdigit() else key
        if not isinstance(given, dict):
            continue
        parts = [
            f"{name} {'yes' if value is True else 'no' if value is False else value}"
            for name, value in given.items()
        ]
        lines.append(f"{label}: {', '.join(parts)}")
    return lines


def prompt_history(*, prompt: Prompt) -> list[HistoryEntry]:
    """Lead actions on this prompt (gold, archive, reopen, edits), newest first, from the
    audit log; adaptive overlap's own reopenings are in the prompt's extra raters/reason."""
    events = AuditEvent.objects.filter(
        project_id=prompt.project_id, action__in=HISTORY_ACTIONS
    ).order_by("-id")[:HISTORY_SCAN]
    mine = f"prompt {prompt.pk}"
    entries = []
    for event in events:
        ids = (event.changes or {}).get("prompt_ids")
        concerns = (
            event.target == mine
            or event.target.startswith(mine + " ")
            or (isinstance(ids, list) and prompt.pk in ids)
        )
        if concerns:
            lines = [] if isinstance(ids, list) else event.change_lines()
            reason = (event.changes or {}).get("reason")
            if reason:
                lines.append(f"reason: {reason}")
            entries.append(
                HistoryEntry(
                    at=event.created_at,
                    actor=event.actor_name or "system",
                    action=event.action,
                    label=event.get_action_display(),
                    lines=lines,
                )
            )
    return entries


def consensus_gold_ranking(*, prompt: Prompt) -> list[list[int]] | None:
    """The latest run's consensus for the prompt, as a gold ranking (None without one)."""
    run = run_selectors.latest_agreement_run(project=prompt.project)
    if run is None:
        return None
    row = PromptAgreement.objects.filter(run=run, prompt=prompt).first()
    if row is None or not row.consensus:
        return None
    return [[int(member) for member in group] for group in row.consensus]
