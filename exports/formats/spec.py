"""What a format spec is made of: columns with a value type and a source, and the metadata
columns that ride along with every format.

A column says where its value comes from (the prompt, the pair's chosen or rejected
response, a field of the pair, …) and how to render it. Every rendering — dict rows, the
canonical JSON Lines bytes, Arrow tables and the Parquet schema — reads these declarations,
so a format is declared once. Pure: no Django, no pyarrow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from exports.pairs import Pair, PromptData, ResponseData

PromptRender = Callable[[PromptData], Any]
ResponseRender = Callable[[PromptData, ResponseData], Any]


class ValueType(Enum):
    """A column's type; the Arrow type of each is in `exports.formats.arrow`."""

    TEXT = "text"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    TEXTS = "texts"
    """A list of strings."""
    MESSAGES = "messages"
    """A list of `{role, content}` messages."""
    CONVERSATION = "conversation"
    """`{"messages": [...]}`, OpenAI's `input`."""


class Source(Enum):
    """Where a column's value comes from."""

    PROMPT = "prompt"
    """Rendered from the prompt, once per prompt."""
    SPLIT = "split"
    """The prompt's split, `train` or `test`."""
    CHOSEN = "chosen"
    """Rendered from the pair's chosen response, once per response."""
    REJECTED = "rejected"
    """Rendered from the pair's rejected response, once per response."""
    COMPLETION = "completion"
    """Unpaired formats: the chosen response on a pair's first row, the rejected one on its
    second."""
    LABEL = "label"
    """Unpaired formats: true on a pair's first row, false on its second."""
    PAIR = "pair"
    """A field of the pair (margin, agreement, n_raters, rater_keys); tuples become lists."""


RESPONSE_SOURCES = (Source.CHOSEN, Source.REJECTED, Source.COMPLETION)
PROMPT_SOURCES = (Source.PROMPT, Source.SPLIT)


@dataclass(frozen=True)
class Column:
    name: str
    type: ValueType
    source: Source
    of_prompt: PromptRender | None = None
    of_response: ResponseRender | None = None
    pair_field: str = ""
    needs_scores: bool = False
    """The value reads `PromptData.scores`, which the export computes only when asked."""

    def prompt_value(self, prompt: PromptData, split: str) -> Any:
        if self.source is Source.SPLIT:
            return split
        assert self.of_prompt is not None, self.name
        return self.of_prompt(prompt)

    def response_value(self, prompt: PromptData, response: ResponseData) -> Any:
        assert self.of_response is not None, self.name
        return self.of_response(prompt, response)

    @property
    def pair_index(self) -> int:
        """Position of the column's field in a `Pair` tuple."""
        return Pair._fields.index(self.pair_field)


def prompt_column(name: str, value_type: ValueType, render: PromptRender) -> Column:
    return Column(name, value_type, Source.PROMPT, of_prompt=render)


def response_columns(
    chosen: str,
    rejected: str,
    value_type: ValueType,
    render: ResponseRender,
    *,
    needs_scores: bool = False,
) -> tuple[Column, Column]:
    """The chosen and the rejected column of one rendering of a response."""
    return (
        Column(chosen, value_type, Source.CHOSEN, of_response=render, needs_scores=needs_scores),
        Column(
            rejected, value_type, Source.REJECTED, of_response=render, needs_scores=needs_scores
        ),
    )


def completion_column(name: str, value_type: ValueType, render: ResponseRender) -> Column:
    return Column(name, value_type, Source.COMPLETION, of_response=render)


def label_column(name: str) -> Column:
    return Column(name, ValueType.BOOLEAN, Source.LABEL)


def pair_column(name: str, value_type: ValueType, field: str | None = None) -> Column:
    field = field or name
    if field not in Pair._fields:
        raise ValueError(f"a pair has no field {field!r}")
    return Column(name, value_type, Source.PAIR, pair_field=field)


def _response_id(prompt: PromptData, response: ResponseData) -> int:
    return response.response_id


def _response_model(prompt: PromptData, response: ResponseData) -> str:
    return response.model


METADATA_COLUMNS: tuple[Column, ...] = (
    prompt_column("prompt_id", ValueType.INTEGER, lambda prompt: prompt.prompt_id),
    prompt_column("prompt_external_id", ValueType.TEXT, lambda prompt: prompt.external_id),
    *response_columns("chosen_id", "rejected_id", ValueType.INTEGER, _response_id),
    *response_columns("chosen_model", "rejected_model", ValueType.TEXT, _response_model),
    pair_column("margin", ValueType.FLOAT),
    pair_column("agreement", ValueType.FLOAT),
    pair_column("n_raters", ValueType.INTEGER),
    pair_column("rater_keys", ValueType.TEXTS),
    prompt_column("group_id", ValueType.INTEGER, lambda prompt: prompt.prompt_id),
    Column("split", ValueType.TEXT, Source.SPLIT),
)
"""Columns that ride along with every format (unless metadata is off) so rows can be traced
and filtered; a format's own column of the same name takes its place."""

SOFT_LABEL_COLUMNS: tuple[Column, ...] = (
    pair_column("chosen_votes", ValueType.INTEGER),
    pair_column("tie_votes", ValueType.INTEGER),
    pair_column("total_votes", ValueType.INTEGER),
)
"""The pair's vote counts (`soft_labels`): of the prompt's rankings that rank both
responses, how many put chosen first, how many tie them, how many there are. A soft label
is `chosen_votes / total_votes` (a tie counting half: `(chosen_votes + tie_votes / 2) /
total_votes`). With metadata on they follow `agreement`; without, they end the row."""
SOFT_LABELS_AFTER = "agreement"

SOURCE_COLUMN = pair_column("source", ValueType.TEXT)
"""`human` or `ai` (`exports.pairs.Pair.source`): only in exports that ask for an AI
judge's pairs (`source` ai or both), right after the format's own columns."""


@dataclass(frozen=True)
class FormatSpec:
    """One export format: its name, what it is for, and its own columns in file order."""

    name: str
    label: str
    """Shown in choices (the form, the admin)."""
    summary: str
    """One line for the API documentation: who reads this format."""
    columns: tuple[Column, ...]
    expresses_ties: bool = True
    """False where a tie cannot be written at all (unpaired rows have no pair)."""
    tags: tuple[str, ...] = ()
    """Hugging Face Hub tags of the format's dataset card (`exports.card`), besides the
    tags every export has."""

    def __post_init__(self) -> None:
        names = [column.name for column in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"format {self.name!r} names a column twice")
        unpaired = {Source.COMPLETION, Source.LABEL} & {column.source for column in self.columns}
        if unpaired and {Source.CHOSEN, Source.REJECTED} & {c.source for c in self.columns}:
            raise ValueError(f"format {self.name!r} mixes paired and unpaired columns")

    @property
    def rows_per_pair(self) -> int:
        """Two for unpaired formats (a desirable and an undesirable row), else one."""
        sources = {column.source for column in self.columns}
        return 2 if {Source.COMPLETION, Source.LABEL} & sources else 1

    @property
    def needs_scores(self) -> bool:
        return any(column.needs_scores for column in self.columns)

    def has_column(self, name: str) -> bool:
        return any(column.name == name for column in self.columns)

    def columns_with(
        self, with_metadata: bool, soft_labels: bool = False, source_column: bool = False
    ) -> tuple[Column, ...]:
        """Every column of a row in file order: the format's own, then `source` (with
        `source_column`), then the metadata, with the vote counts after `agreement` (or at the
        end without metadata)."""
        soft = SOFT_LABEL_COLUMNS if soft_labels else ()
        own_columns = self.columns + ((SOURCE_COLUMN,) if source_column else ())
        if not with_metadata:
            return own_columns + soft
        own = {column.name for column in own_columns}
        columns: list[Column] = list(own_columns)
        for column in METADATA_COLUMNS:
            if column.name not in own:
                columns.append(column)
            if column.name == SOFT_LABELS_AFTER:
                # Next to the other pair values, so they stay one run for the encoder.
                columns.extend(soft)
        return tuple(columns)
