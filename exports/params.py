"""The export parameters, each declared once, and their validation.

`PARAMS` says for every parameter its type, default, range or choices, label and help, and
what it does: a column of the job (format, strategy, container), the shape of the rows, a
filter on the prompts or rankings read, a filter on the pairs built, or the split. The form
(`exports.forms`), the API serializers (`exports.api.serializers`), `export_params_clean`
and the selector's filters (`exports.selectors.export_filters`) and pair filters
(`pair_filters`) are all built from it: a new filter is one declaration here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.errors import InvalidInput
from core.jobs import JobStatus
from exports.formats import (
    DEFAULT_FORMAT,
    EXPORT_FORMAT_CHOICES,
    FORMATS,
    METADATA_COLUMNS,
    RECORD_FORMAT_KINDS,
    SOFT_LABEL_COLUMNS,
    format_spec,
    formats_with_column,
)
from exports.formats.sft import SFT_FORMAT_NAMES
from exports.models import Container, ExportJob, PairStrategy
from exports.pairs import AI, HUMAN, Pair
from labeling.models import Membership, Project
from llm.models import ModelEndpoint
from rankings.models import Flag, FlagStatus

BIGGEST_ID = 2**63 - 1
BOTH = "both"
SOURCE_CHOICES = ((HUMAN, "Human raters"), (AI, "AI judge"), (BOTH, "Both"))
KeepPair = Callable[[Pair], bool]


class Kind(Enum):
    BOOLEAN = "boolean"
    INTEGER = "integer"
    NUMBER = "number"
    TIME = "time"
    """An ISO 8601 date or time, stored as UTC ISO text."""
    CHOICE = "choice"
    EXPORT = "export"
    """The id of an earlier finished export of the same project."""


class Scope(Enum):
    JOB = "job"
    """A column of the job itself: format, strategy, container."""
    SHAPE = "shape"
    """How rows look (metadata columns, ties)."""
    ROWS = "rows"
    """Which prompts and rankings are read: a `prompts` or `rankings` condition, or read by
    name where it is not a condition (`min_raters` is a count the reader applies,
    `since_export` the earlier exports' prompts the service skips)."""
    PAIRS = "pairs"
    """Which of the built pairs are kept: a `keeps` predicate."""
    SPLIT = "split"
    """The train/test split."""


@dataclass(frozen=True)
class ExportParam:
    name: str
    kind: Kind
    default: Any
    label: str
    help: str
    scope: Scope
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[tuple[str, str], ...] = ()
    in_form: bool = True
    """Shown on the lead's export page (every parameter is in the API)."""
    prompts: Callable[[Any], Q | None] | None = None
    """The condition on the prompts read for this value, or None for all."""
    rankings: Callable[[Any, Project], Q | None] | None = None
    """The condition on the rankings read for this value, or None for all."""
    keeps: Callable[[Any], KeepPair | None] | None = None
    """Which built pairs this value keeps, or None for all."""

    @property
    def stored(self) -> bool:
        """Kept in the job's `params` (the JOB ones are columns of their own)."""
        return self.scope is not Scope.JOB

    def clean(self, value: Any) -> Any:
        """The value checked and in canonical form; errors name the parameter."""
        name = self.name
        if self.kind is Kind.BOOLEAN:
            if not isinstance(value, bool):
                raise InvalidInput(f"{name} must be true or false", field=name)
            return value
        if self.kind is Kind.CHOICE:
            if value not in {choice for choice, _ in self.choices}:
                raise InvalidInput(f"unknown {name} {value!r}", field=name)
            return value
        if self.kind is Kind.TIME:
            return _timestamp(value, name).isoformat()
        return self._number(value, float if self.kind is Kind.NUMBER else int)

    def _number(self, value: Any, kind: type[int] | type[float]) -> int | float:
        name = self.name
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InvalidInput(f"{name} must be a number", field=name)
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"{name} must be a number", field=name) from None
        if kind is int and float(value) != number:
            raise InvalidInput(f"{name} must be a whole number", field=name)
        low, high = self.minimum, self.maximum
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise InvalidInput(f"{name} must be {bounds}", field=name)
        return number


def _timestamp(value: Any, name: str) -> datetime:
    parsed = value if isinstance(value, datetime) else None
    if parsed is None and isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                parsed = None
    if parsed is None:
        raise InvalidInput(f"{name} must be an ISO 8601 date or time", field=name)
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# --- what the filters do ------------------------------------------------------------------


def _without_raters(rater_ids: list[int]) -> Q | None:
    return ~Q(rater_id__in=sorted(set(rater_ids))) if rater_ids else None


def _without_excluded_raters(on: bool, project: Project) -> Q | None:
    if not on:
        return None
    excluded = Membership.objects.filter(project=project, excluded=True)
    return _without_raters(list(excluded.values_list("user_id", flat=True)))


def _without_flagged_raters(on: bool, project: Project) -> Q | None:
    if not on:
        return None
    flagged = Flag.objects.filter(project=project, status=FlagStatus.OPEN)
    return _without_raters(list(flagged.values_list("rater_id", flat=True)))


def _created(lookup: str) -> Callable[[str | None, Project], Q | None]:
    def condition(value: str | None, project: Project) -> Q | None:
        return Q(**{f"created_at__{lookup}": datetime.fromisoformat(value)}) if value else None

    return condition


def _agreement_at_least(minimum: float) -> KeepPair | None:
    return (lambda pair: pair.agreement >= minimum) if minimum > 0 else None


def _margin_at_most(maximum: float | None) -> KeepPair | None:
    return None if maximum is None else (lambda pair: pair.margin <= maximum)


_METADATA_NAMES = ", ".join(column.name for column in METADATA_COLUMNS)
_SOFT_LABEL_NAMES = ", ".join(column.name for column in SOFT_LABEL_COLUMNS)
_WITH_MARGIN = " or ".join(formats_with_column("margin"))
_UNPAIRED = ", ".join(spec.name for spec in FORMATS if not spec.expresses_ties)


PARAMS: tuple[ExportParam, ...] = (
    ExportParam(
        "format", Kind.CHOICE, DEFAULT_FORMAT, "Format",
        "How the rows are laid out: for TRL, OpenAI, HH-RLHF or UltraFeedback readers.", Scope.JOB,
        choices=tuple(EXPORT_FORMAT_CHOICES),
    ),
    ExportParam(
        "strategy", Kind.CHOICE, PairStrategy.ALL_PAIRS.value, "Strategy",
        "Which pairs a prompt's rankings give.", Scope.JOB,
        choices=tuple(PairStrategy.choices),
    ),
    ExportParam(
        "container", Kind.CHOICE, Container.JSONL.value, "Container",
        "JSON Lines, gzip JSON Lines or Parquet.", Scope.JOB,
        choices=tuple(Container.choices),
    ),
    ExportParam(
        "with_metadata", Kind.BOOLEAN, True, "Metadata columns (ids, models, agreement, …)",
        f"Add {_METADATA_NAMES}.", Scope.SHAPE,
    ),
    ExportParam(
        "include_ties", Kind.BOOLEAN, False, "Include ties (margin 0)",
        f"Export tied pairs (margin 0). Needs metadata on, or {_WITH_MARGIN}; "
        f"{_UNPAIRED} cannot express a tie.", Scope.SHAPE,
    ),
    ExportParam(
        "soft_labels", Kind.BOOLEAN, False, "Vote counts (soft labels)",
        f"Add {_SOFT_LABEL_NAMES}: of the prompt's rankings read that rank both responses, "
        "how many put chosen first, how many tie them, how many there are. Train on "
        "chosen_votes / total_votes as a soft label, or filter by it.", Scope.SHAPE,
    ),
    ExportParam(
        "source", Kind.CHOICE, HUMAN, "Source of the pairs",
        "Whose rankings give the pairs: the human raters (default), an AI judge's verdicts "
        "(`judge_endpoint`), or both. With ai or both, rows get a `source` column (human / "
        "ai). AI pairs are paired by the same strategy from the judge's verdict; their votes, "
        "agreement and n_raters count the judge's two shown orders (agreement 1 where both "
        "orders agree, so min_agreement 1 keeps only position-consistent AI pairs). Prompt "
        "filters apply to them; rater filters, min_raters and the ranking snapshot do not.",
        Scope.ROWS, choices=SOURCE_CHOICES, in_form=False,
    ),
    ExportParam(
        "judge_endpoint", Kind.INTEGER, None, "AI judge endpoint id",
        "With source ai or both: the model endpoint whose judge verdicts give the AI pairs "
        "(not read with source human).",
        Scope.ROWS, minimum=1, maximum=BIGGEST_ID, in_form=False,
    ),
    ExportParam(
        "min_agreement", Kind.NUMBER, 0.0, "Minimum pair agreement",
        "Drop pairs whose agreement (share of the prompt's raters ordering the pair the same "
        "way) is below this, 0 to 1.", Scope.PAIRS,
        minimum=0.0, maximum=1.0, keeps=_agreement_at_least,
    ),
    ExportParam(
        "max_margin", Kind.NUMBER, None, "Maximum margin",
        "Drop pairs whose margin (rank distance, the rater's strength label, or the consensus "
        "score gap) exceeds this. Empty keeps every pair.", Scope.PAIRS,
        minimum=0.0, keeps=_margin_at_most,
    ),
    ExportParam(
        "min_raters", Kind.INTEGER, 1, "Minimum raters",
        "Only prompts with at least this many rankings after the filters.", Scope.ROWS,
        minimum=1, maximum=1000,
    ),
    ExportParam(
        "exclude_flagged_raters", Kind.BOOLEAN, False,
        "Leave out raters with an open quality flag",
        "Leave out raters with an open quality flag.", Scope.ROWS,
        rankings=_without_flagged_raters,
    ),
    ExportParam(
        "exclude_excluded_raters", Kind.BOOLEAN, True, "Leave out excluded raters",
        "Leave out raters a lead excluded.", Scope.ROWS,
        rankings=_without_excluded_raters,
    ),
    ExportParam(
        "include_gold", Kind.BOOLEAN, False, "Include gold prompts",
        "Include gold prompts.", Scope.ROWS,
        prompts=lambda on: None if on else Q(is_gold=False),
    ),
    ExportParam(
        "include_archived", Kind.BOOLEAN, False, "Include archived prompts",
        "Include prompts a lead archived from the prompt browser.", Scope.ROWS,
        prompts=lambda on: None if on else Q(archived_at__isnull=True),
    ),
    ExportParam(
        "only_complete", Kind.BOOLEAN, False, "Only prompts with complete overlap",
        "Only prompts that collected their full overlap.", Scope.ROWS,
        prompts=lambda on: Q(is_complete=True) if on else None,
    ),
    ExportParam(
        "created_after", Kind.TIME, None, "Rankings created after",
        "Only rankings created at or after this time.", Scope.ROWS,
        rankings=_created("gte"),
    ),
    ExportParam(
        "created_before", Kind.TIME, None, "Rankings created before",
        "Only rankings created before this time.", Scope.ROWS,
        in_form=False, rankings=_created("lt"),
    ),
    ExportParam(
        "since_export", Kind.EXPORT, None, "Only prompts not in export",
        "Incremental: leave out prompts covered by this earlier export of the project (and by "
        "the exports it continued).", Scope.ROWS,
        minimum=1, maximum=BIGGEST_ID,
    ),
    ExportParam(
        "until_ranking_id", Kind.INTEGER, None, "Rankings up to id",
        "Only rankings up to this id. A job pins it to the newest ranking when it starts (see "
        "last_ranking_id); pass an earlier job's value to repeat that export.", Scope.ROWS,
        minimum=0, maximum=BIGGEST_ID, in_form=False,
        rankings=lambda newest, project: None if newest is None else Q(id__lte=newest),
    ),
    ExportParam(
        "include_unreviewed", Kind.BOOLEAN, False, "Include unreviewed demonstrations",
        f"SFT formats ({', '.join(SFT_FORMAT_NAMES)}): also export demonstrations not "
        "reviewed (not routed to review, or still waiting); rejected ones never are.",
        Scope.ROWS,
    ),
    ExportParam(
        "test_fraction", Kind.NUMBER, 0.0, "Test fraction",
        "Share of prompts held out for testing (by prompt, seeded); 0 means no split.",
        Scope.SPLIT, minimum=0.0, maximum=0.99,
    ),
    ExportParam(
        "seed", Kind.INTEGER, 0, "Split seed", "Seed of the split.", Scope.SPLIT,
        minimum=0, maximum=BIGGEST_ID,
    ),
)  # fmt: skip

PARAMS_BY_NAME = {param.name: param for param in PARAMS}
STORED_PARAMS = tuple(param for param in PARAMS if param.stored)
JOB_PARAMS = tuple(param for param in PARAMS if not param.stored)


def export_params_clean(
    params: dict[str, Any],
    *,
    project: Project | None = None,
    format: str = DEFAULT_FORMAT,
    strategy: str = PairStrategy.ALL_PAIRS,
    container: str = Container.JSONL,
) -> dict[str, Any]:
    """Every stored parameter, defaults filled in and values checked; errors name the field.

    A job stores all of them, so equal requests store equal parameters and an export can
    be repeated from its record.
    """
    unknown = sorted(set(params) - {param.name for param in STORED_PARAMS})
    if unknown:
        raise InvalidInput(f"unknown export parameter {unknown[0]!r}", field=unknown[0])
    for name, value in (("format", format), ("strategy", strategy), ("container", container)):
        PARAMS_BY_NAME[name].clean(value)
    cleaned = {
        param.name: param.default
        if params.get(param.name) is None
        else param.clean(params[param.name])
        for param in STORED_PARAMS
    }
    _check_format_params(format, strategy, cleaned)
    _check_format_kind(format, project)
    after, before = cleaned["created_after"], cleaned["created_before"]
    if after and before and after >= before:
        raise InvalidInput("created_before must be after created_after", field="created_before")
    if cleaned["include_ties"] and format not in RECORD_FORMAT_KINDS:
        spec = format_spec(format)
        if not spec.expresses_ties:
            raise InvalidInput(
                f"{format} has no way to express a tie; leave include_ties off",
                field="include_ties",
            )
        if not cleaned["with_metadata"] and not spec.has_column("margin"):
            raise InvalidInput(
                f"a tie is only told apart by its margin: keep metadata on or use {_WITH_MARGIN}",
                field="include_ties",
            )
    if cleaned["since_export"] is not None:
        _check_earlier_export(cleaned["since_export"], project)
    _check_judge_endpoint(cleaned["source"], cleaned["judge_endpoint"], project)
    return cleaned


# Parameters of pairs and rankings: an SFT export (one row per demonstration) refuses them
# rather than ignore them.
PAIR_ONLY_PARAMS = (
    "include_ties", "soft_labels", "source", "judge_endpoint", "min_agreement", "max_margin",
    "min_raters", "since_export", "until_ranking_id",
)  # fmt: skip


def _check_format_params(format: str, strategy: str, cleaned: dict[str, Any]) -> None:
    """Each parameter applies to the formats it says: pair ones to pair formats,
    `include_unreviewed` to SFT formats."""
    if cleaned["include_unreviewed"] and format not in SFT_FORMAT_NAMES:
        raise InvalidInput(
            f"include_unreviewed is for the SFT formats ({', '.join(SFT_FORMAT_NAMES)})",
            field="include_unreviewed",
        )
    if format not in RECORD_FORMAT_KINDS:
        return
    if strategy != PairStrategy.ALL_PAIRS:
        raise InvalidInput(f"{format} has one row per record, no pairs", field="strategy")
    for name in PAIR_ONLY_PARAMS:
        if cleaned[name] != PARAMS_BY_NAME[name].default:
            raise InvalidInput(f"{name} is for pair formats, not {format}", field=name)


def _check_format_kind(format: str, project: Project | None) -> None:
    """A record format reads one task kind's records: refused for another kind's project."""
    kind = RECORD_FORMAT_KINDS.get(format)
    if kind is not None and project is not None and project.task_kind != kind:
        raise InvalidInput(f"{format} is for {kind} projects", field="format")


def _check_judge_endpoint(source: str, endpoint_id: int | None, project: Project | None) -> None:
    if source == HUMAN:
        return  # judge_endpoint is not read
    if endpoint_id is None:
        raise InvalidInput(f"source {source} needs judge_endpoint", field="judge_endpoint")
    if not ModelEndpoint.objects.filter(pk=endpoint_id, project=project).exists():
        raise InvalidInput("no model endpoint of this project has that id", field="judge_endpoint")


def _check_earlier_export(job_id: int, project: Project | None) -> None:
    earlier = ExportJob.objects.filter(pk=job_id, project=project).only("status").first()
    if earlier is None:
        raise InvalidInput("no earlier export of this project has that id", field="since_export")
    if earlier.status != JobStatus.DONE:
        raise InvalidInput("the earlier export did not finish", field="since_export")


def pair_filters(params: dict[str, Any]) -> list[KeepPair]:
    """The predicates a built pair must pass, from the PAIRS parameters that are on."""
    keeps = (param.keeps(params[param.name]) for param in PARAMS if param.keeps is not None)
    return [keep for keep in keeps if keep is not None]
