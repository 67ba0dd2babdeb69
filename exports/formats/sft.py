"""Supervised fine-tuning formats: one row per demonstration (a prompt and its ideal reply),
each declared once with its columns, like the pair formats of `exports.formats.registry`.

- `sft-messages`: TRL's conversational language-modelling format, `{"messages": [...]}`,
  the prompt's turns then the demonstration as the assistant turn (SFTTrainer).
- `openai-sft`: OpenAI chat fine-tuning JSONL, `{"messages": [...]}` with system, user and
  assistant turns only, and nothing else on the line (metadata is never added: the upload
  takes exactly this shape).
- `prompt-completion`: TRL's prompt-completion format, conversational: `prompt` is the
  message list of the conversation, `completion` the one assistant message. Conversational
  rather than standard strings because a prompt is a conversation (system turns, earlier
  assistant turns): the messages keep it whole and TRL applies the model's chat template,
  training on the completion only.

Metadata columns (unless `with_metadata` is off) trace each row: the demonstration and
prompt ids, the writer's pseudonymous rater key, whether and how it was reviewed, and the
edit distances. Pure: no Django, no pyarrow at import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exports.formats.spec import ValueType

if TYPE_CHECKING:
    import pyarrow as pa

Message = dict[str, str]


@dataclass(frozen=True)
class DemonstrationData:
    """One exported demonstration, as the selector reads it."""

    demonstration_id: int
    prompt_id: int
    prompt_external_id: str
    messages: tuple[tuple[str, str], ...]
    """The prompt's (role, content) turns."""
    text: str
    """The exported reply: the writer's, or the reviewer's edit of it."""
    rater_key: str
    mode: str
    review_status: str
    reviewer_key: str | None
    edit_distance: int | None
    """Rank then rewrite: characters changed from the rewritten response."""
    review_edit_distance: int | None
    """Characters the reviewer changed (an edit), else None."""
    original_response_id: int | None


Render = Callable[[DemonstrationData, str], Any]


@dataclass(frozen=True)
class SftColumn:
    name: str
    type: ValueType
    render: Render


@dataclass(frozen=True)
class SftFormat:
    name: str
    label: str
    summary: str
    columns: tuple[SftColumn, ...]
    tags: tuple[str, ...] = ()
    metadata: bool = True
    """Whether metadata columns may ride along (`with_metadata`)."""

    def columns_with(self, with_metadata: bool) -> tuple[SftColumn, ...]:
        return self.columns + (METADATA_COLUMNS if with_metadata and self.metadata else ())


def prompt_messages(data: DemonstrationData) -> list[Message]:
    return [{"role": role, "content": content} for role, content in data.messages]


def _assistant(data: DemonstrationData) -> Message:
    return {"role": "assistant", "content": data.text}


OPENAI_ROLES = ("system", "user", "assistant")


def _openai_messages(data: DemonstrationData, split: str) -> list[Message]:
    unknown = sorted({role for role, _ in data.messages} - set(OPENAI_ROLES))
    if unknown:
        raise ValueError(f"OpenAI chat fine-tuning has no {unknown[0]!r} role")
    return [*prompt_messages(data), _assistant(data)]


METADATA_COLUMNS: tuple[SftColumn, ...] = (
    SftColumn("demonstration_id", ValueType.INTEGER, lambda data, split: data.demonstration_id),
    SftColumn("prompt_id", ValueType.INTEGER, lambda data, split: data.prompt_id),
    SftColumn("prompt_external_id", ValueType.TEXT, lambda data, split: data.prompt_external_id),
    SftColumn("rater_key", ValueType.TEXT, lambda data, split: data.rater_key),
    SftColumn("mode", ValueType.TEXT, lambda data, split: data.mode),
    SftColumn("reviewed", ValueType.BOOLEAN, lambda data, split: data.reviewer_key is not None),
    SftColumn("review_status", ValueType.TEXT, lambda data, split: data.review_status),
    SftColumn("reviewer_key", ValueType.TEXT, lambda data, split: data.reviewer_key),
    SftColumn(
        "original_response_id", ValueType.INTEGER, lambda data, split: data.original_response_id
    ),
    SftColumn("edit_distance", ValueType.INTEGER, lambda data, split: data.edit_distance),
    SftColumn(
        "review_edit_distance", ValueType.INTEGER, lambda data, split: data.review_edit_distance
    ),
    SftColumn("group_id", ValueType.INTEGER, lambda data, split: data.prompt_id),
    SftColumn("split", ValueType.TEXT, lambda data, split: split),
)


SFT_FORMATS: tuple[SftFormat, ...] = (
    SftFormat(
        name="sft-messages",
        label="SFT messages (TRL conversational)",
        summary="Supervised fine-tuning, TRL conversational: messages = the prompt's turns and "
        "the demonstration as the assistant turn (SFTTrainer).",
        tags=("sft", "trl", "conversational"),
        columns=(
            SftColumn(
                "messages",
                ValueType.MESSAGES,
                lambda data, split: [*prompt_messages(data), _assistant(data)],
            ),
        ),
    ),
    SftFormat(
        name="openai-sft",
        label="OpenAI chat fine-tuning",
        summary="OpenAI chat fine-tuning JSONL: messages with system/user/assistant turns, the "
        "demonstration last; no other keys.",
        tags=("openai", "sft"),
        columns=(SftColumn("messages", ValueType.MESSAGES, _openai_messages),),
        metadata=False,
    ),
    SftFormat(
        name="prompt-completion",
        label="TRL prompt-completion (conversational)",
        summary="TRL prompt-completion, conversational: prompt = the conversation's messages, "
        "completion = [the demonstration as an assistant message].",
        tags=("sft", "trl", "conversational"),
        columns=(
            SftColumn("prompt", ValueType.MESSAGES, lambda data, split: prompt_messages(data)),
            SftColumn("completion", ValueType.MESSAGES, lambda data, split: [_assistant(data)]),
        ),
    ),
)
_BY_NAME = {spec.name: spec for spec in SFT_FORMATS}
SFT_FORMAT_NAMES: tuple[str, ...] = tuple(_BY_NAME)
SFT_FORMAT_CHOICES: list[tuple[str, str]] = [(spec.name, spec.label) for spec in SFT_FORMATS]


def sft_format(name: str) -> SftFormat:
    spec = _BY_NAME.get(name)
    if spec is None:
        raise ValueError(f"unknown SFT format {name!r}; expected one of {SFT_FORMAT_NAMES}")
    return spec


def sft_row(name: str, data: DemonstrationData, split: str, with_metadata: bool) -> dict[str, Any]:
    """One demonstration's row in format `name`."""
    return {
        column.name: column.render(data, split)
        for column in sft_format(name).columns_with(with_metadata)
    }


def sft_arrow_schema(name: str, with_metadata: bool) -> pa.Schema:
    """The fixed Parquet schema of the format's rows."""
    import pyarrow as pa

    from exports.formats.arrow import arrow_type

    columns = sft_format(name).columns_with(with_metadata)
    return pa.schema([(column.name, arrow_type(column.type)) for column in columns])
