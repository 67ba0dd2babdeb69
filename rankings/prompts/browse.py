"""The prompt browser's list: a page of a project's prompts under a `BrowseQuery`.

Every page is a keyset read (`WHERE key > last key ORDER BY key LIMIT n + 1`) on an index,
so page 1000 costs what page 1 does, and nothing is counted. Each ordering has a driving
table — prompts by id, the latest run's agreement rows by (agreement, prompt), or the
project's skipped assignments grouped by prompt — and every filter is written once, for a
prompt reached directly or through `prompt__`. The rows' details (models, counts,
agreement) are then read in bulk for the page's ids only: a handful of indexed queries.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Exists, F, FloatField, OuterRef, Q, Subquery, Value
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.db.models.functions import Coalesce
from django.utils import timezone

from labeling.models import (
    Assignment,
    AssignmentStatus,
    Project,
    Prompt,
    Response,
)
from labeling.services import occupied_assignments
from rankings.models import AgreementRun, Flag, FlagStatus, PromptAgreement, Ranking
from rankings.prompts.query import STATES, BrowseQuery, PromptState
from rankings.prompts.search import PromptTextContains
from rankings.runs import selectors as run_selectors

SNIPPET_LENGTH = 160
MODEL_SAMPLE_PROMPTS = 500


@dataclass(frozen=True)
class PromptRow:
    id: int
    external_id: str
    snippet: str
    created_at: datetime
    state: str
    is_gold: bool
    archived: bool
    extra_raters: int
    extra_reason: str
    models: list[str]
    n_responses: int
    rankings: int
    skips: int
    wanted: int
    agreement: float | None
    flagged_raters: int

    @property
    def state_label(self) -> str:
        return STATES[self.state]


@dataclass(frozen=True)
class BrowsePage:
    rows: list[PromptRow]
    next_after: tuple[Any, ...] | None  # the key to continue after, None on the last page
    run: AgreementRun | None


def flagged_rater_ids(*, project: Project) -> list[int]:
    """Raters of the project with an open quality flag."""
    return list(
        Flag.objects.filter(project=project, status=FlagStatus.OPEN)
        .order_by()
        .values_list("rater_id", flat=True)
        .distinct()
    )


def browse_prompts(*, project: Project, query: BrowseQuery) -> BrowsePage:
    run = run_selectors.latest_agreement_run(project=project)
    flagged = flagged_rater_ids(project=project)
    if query.uses_agreement and run is None:
        return BrowsePage(rows=[], next_after=None, run=None)
    if query.flagged and not flagged:
        return BrowsePage(rows=[], next_after=None, run=run)
    if query.ordering in ("agreement", "-agreement"):
        assert run is not None
        ids, keys = _page_by_agreement(project=project, query=query, run=run, flagged=flagged)
    elif query.ordering == "most_skipped":
        ids, keys = _page_by_skips(project=project, query=query, run=run, flagged=flagged)
    else:
        ids, keys = _page_by_id(project=project, query=query, run=run, flagged=flagged)
    next_after = keys[query.page_size - 1] if len(ids) > query.page_size else None
    ids = ids[: query.page_size]
    rows = prompt_rows(project=project, ids=ids, run=run, flagged=flagged)
    return BrowsePage(rows=rows, next_after=next_after, run=run)


# Filters, written once for `prefix` "" (a Prompt) or "prompt__" (a row pointing at one) ----


def prompt_conditions(
    *,
    project: Project,
    query: BrowseQuery,
    run: AgreementRun | None,
    flagged: list[int],
    prefix: str = "",
    agreement_here: bool = False,
) -> list[Any]:
    """Filter expressions for the query. `agreement_here`: the driving rows are the run's
    agreement rows, so the agreement range is on them, not an EXISTS."""
    ref = OuterRef("pk" if not prefix else "prompt_id")
    conditions: list[Any] = [Q(**{f"{prefix}project": project})]
    conditions += _state_conditions(query.state, prefix=prefix, ref=ref)
    if query.q:
        prompt_id = F(f"{prefix.removesuffix('__')}_id" if prefix else "pk")
        conditions.append(PromptTextContains(prompt_id, query.q, project_id=project.pk))
    if query.model:
        conditions.append(Exists(Response.objects.filter(prompt_id=ref, model_name=query.model)))
    if query.flagged is not None and flagged:
        by_flagged = Exists(
            Ranking.objects.filter(prompt_id=ref, rater_id__in=flagged, is_repeat=False)
        )
        conditions.append(by_flagged if query.flagged else ~by_flagged)
    if query.agreement_min is not None or query.agreement_max is not None:
        span = Q()
        if query.agreement_min is not None:
            span &= Q(agreement__gte=query.agreement_min)
        if query.agreement_max is not None:
            span &= Q(agreement__lte=query.agreement_max)
        if agreement_here:
            conditions.append(span)
        else:
            conditions.append(Exists(PromptAgreement.objects.filter(span, run=run, prompt_id=ref)))
    return conditions


def _state_conditions(state: str, *, prefix: str, ref: OuterRef) -> list[Any]:
    def field(name: str, value: Any) -> Q:
        return Q(**{f"{prefix}{name}": value})

    if state == PromptState.ARCHIVED:
        return [field("archived_at__isnull", False)]
    live = [field("archived_at__isnull", True)]
    if state == "":
        return live
    if state == PromptState.GOLD:
        return [*live, field("is_gold", True)]
    if state == PromptState.REOPENED:
        return [*live, field("extra_raters__gt", 0)]
    if state == PromptState.SKIPPED:
        skipped = Assignment.objects.filter(prompt_id=ref, status=AssignmentStatus.SKIPPED)
        return [*live, Exists(skipped)]
    if state == PromptState.COMPLETE:
        return [*live, field("is_gold", False), field("is_complete", True)]
    worked_on = Exists(
        Assignment.objects.filter(
            Q(prompt_id=ref, is_repeat=False) & occupied_assignments(now=timezone.now())
        )
    )
    open_prompt = [*live, field("is_gold", False), field("is_complete", False)]
    if state == PromptState.IN_PROGRESS:
        return [*open_prompt, worked_on]
    assert state == PromptState.UNTOUCHED
    return [*open_prompt, ~worked_on]


# Drivers: one per ordering ---------------------------------------------------------------


def _page_by_id(
    *, project: Project, query: BrowseQuery, run: AgreementRun | None, flagged: list[int]
) -> tuple[list[int], list[tuple[Any, ...]]]:
    prompts = Prompt.objects.filter(
        *prompt_conditions(project=project, query=query, run=run, flagged=flagged)
    )
    newest = query.ordering == "newest"
    if query.after is not None:
        prompts = (
            prompts.filter(pk__lt=query.after[0])
            if newest
            else prompts.filter(pk__gt=query.after[0])
        )
    ids = list(
        prompts.order_by("-pk" if newest else "pk").values_list("pk", flat=True)[
            : query.page_size + 1
        ]
    )
    return ids, [(pk,) for pk in ids]


def _page_by_agreement(
    *, project: Project, query: BrowseQuery, run: AgreementRun, flagged: list[int]
) -> tuple[list[int], list[tuple[Any, ...]]]:
    """Prompts the run gave an agreement, by (agreement, prompt id); others have no place
    in this order and are left out."""
    rows = PromptAgreement.objects.filter(run=run, agreement__isnull=False).filter(
        *prompt_conditions(
            project=project,
            query=query,
            run=run,
            flagged=flagged,
            prefix="prompt__",
            agreement_here=True,
        )
    )
    lowest_first = query.ordering == "agreement"
    if query.after is not None:
        # A row comparison, (agreement, prompt) > (a, p): one range on the run's index.
        key = Tuple(F("agreement"), F("prompt_id"))
        after = list(query.after)
        rows = rows.filter(
            TupleGreaterThan(key, after) if lowest_first else TupleLessThan(key, after)
        )
    order = ("agreement", "prompt_id") if lowest_first else ("-agreement", "-prompt_id")
    found = list(rows.order_by(*order).values_list("agreement", "prompt_id")[: query.page_size + 1])
    return [prompt_id for _, prompt_id in found], [(value, pk) for value, pk in found]


def _page_by_skips(
    *, project: Project, query: BrowseQuery, run: AgreementRun | None, flagged: list[int]
) -> tuple[list[int], list[tuple[Any, ...]]]:
    """Prompts some rater skipped, most skips first (then newest).

    The project's skipped assignments are few and have a partial index: they are counted
    per prompt alone (joining prompts first would read all of them), and the prompt filters
    are then checked on the candidates, a batch at a time, until the page is full.
    """
    grouped = (
        Assignment.objects.filter(project=project, status=AssignmentStatus.SKIPPED)
        .values("prompt_id")
        # Counting the prompt column, not ids: an index-only scan of the partial index.
        .annotate(skips=Count("prompt_id"))
    )
    if query.after is not None:
        skips, pk = query.after
        grouped = grouped.filter(Q(skips__lt=skips) | Q(skips=skips, prompt_id__lt=pk))
    ordered = grouped.order_by("-skips", "-prompt_id").values_list("skips", "prompt_id")
    conditions = prompt_conditions(project=project, query=query, run=run, flagged=flagged)
    found: list[tuple[int, int]] = []
    start, size = 0, 2 * (query.page_size + 1)
    while len(found) <= query.page_size:
        # Most pages fill from the first batch; a selective filter reads on, 4 times more a time.
        batch = list(ordered[start : start + size])
        matching = set(
            Prompt.objects.filter(*conditions)
            .filter(pk__in=[pk for _, pk in batch])
            .values_list("pk", flat=True)
        )
        found += [(skips, pk) for skips, pk in batch if pk in matching]
        if len(batch) < size:
            break
        start, size = start + size, size * 4
    found = found[: query.page_size + 1]
    return [pk for _, pk in found], [(skips, pk) for skips, pk in found]


# Rows ----------------------------------------------------------------------------------------


def prompt_rows(
    *, project: Project, ids: list[int], run: AgreementRun | None, flagged: list[int] | None = None
) -> list[PromptRow]:
    """The rows for these prompt ids, in this order, in two queries whatever the page size:
    the prompts with their counts and agreement as subqueries, then their responses' models."""
    if not ids:
        return []
    flagged = flagged_rater_ids(project=project) if flagged is None else flagged
    prompt = OuterRef("pk")
    not_repeat = Assignment.objects.filter(prompt_id=prompt, is_repeat=False)
    annotations: dict[str, Any] = {
        "n_rankings": _count(not_repeat.filter(status=AssignmentStatus.SUBMITTED)),
        "n_skips": _count(
            Assignment.objects.filter(prompt_id=prompt, status=AssignmentStatus.SKIPPED)
        ),
        "worked_on": Exists(not_repeat.filter(occupied_assignments(now=timezone.now()))),
        "n_flagged": _count(
            Ranking.objects.filter(prompt_id=prompt, rater_id__in=flagged, is_repeat=False)
        )
        if flagged
        else Value(0),
        "agreement_value": Subquery(
            PromptAgreement.objects.filter(run=run, prompt_id=prompt).values("agreement")[:1]
        )
        if run is not None
        else Value(None, output_field=FloatField()),
    }
    prompts = {row.pk: row for row in Prompt.objects.filter(pk__in=ids).annotate(**annotations)}
    models: dict[int, list[str]] = defaultdict(list)
    for prompt_id, model in (
        Response.objects.filter(prompt_id__in=ids).order_by("prompt_id", "position")
    ).values_list("prompt_id", "model_name"):
        models[prompt_id].append(model)
    rows = []
    for pk in ids:
        row: Any = prompts[pk]  # with the annotations above
        rows.append(
            PromptRow(
                id=pk,
                external_id=row.external_id,
                snippet=prompt_snippet(row.messages),
                created_at=row.created_at,
                state=prompt_state(row, worked_on=row.worked_on),
                is_gold=row.is_gold,
                archived=row.archived_at is not None,
                extra_raters=row.extra_raters,
                extra_reason=row.extra_reason,
                models=models[pk],
                n_responses=len(models[pk]),
                rankings=row.n_rankings,
                skips=row.n_skips,
                wanted=project.overlap + row.extra_raters,
                agreement=row.agreement_value,
                flagged_raters=row.n_flagged,
            )
        )
    return rows


def _count(rows: Any) -> Coalesce:
    counted = rows.order_by().values("prompt_id").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted), Value(0))


def prompt_state(prompt: Prompt, *, worked_on: bool) -> str:
    """One state per prompt for display; the filters may match a prompt in several
    (a reopened prompt is also in progress, a skipped one also untouched)."""
    if prompt.archived_at is not None:
        return PromptState.ARCHIVED
    if prompt.is_gold:
        return PromptState.GOLD
    if prompt.is_complete:
        return PromptState.COMPLETE
    if prompt.extra_raters:
        return PromptState.REOPENED
    return PromptState.IN_PROGRESS if worked_on else PromptState.UNTOUCHED


def prompt_snippet(messages: Any) -> str:
    """The last user turn (what is being answered), shortened for a list row."""
    turns = messages if isinstance(messages, list) else []
    user_turns = [t for t in turns if isinstance(t, dict) and t.get("role") == "user"]
    text = str((user_turns or turns or [{}])[-1].get("content", ""))
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_LENGTH else text[: SNIPPET_LENGTH - 1] + "…"


def model_names_seen(*, project: Project) -> list[str]:
    """Model names among the newest prompts' responses: suggestions for the model filter,
    read from a bounded sample so the page stays fast on a million prompts."""
    newest = (
        Prompt.objects.filter(project=project)
        .order_by("-pk")
        .values_list("pk", flat=True)[:MODEL_SAMPLE_PROMPTS]
    )
    names = (
        Response.objects.filter(prompt_id__in=list(newest))
        .exclude(model_name="")
        .values_list("model_name", flat=True)
        .distinct()
    )
    return sorted(names)
