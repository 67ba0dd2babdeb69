"""The export formats, each declared once: its columns and how each renders.

The job's `format` choices, the API's and the form's choices, the OpenAPI examples, the
dict rows, the JSON Lines bytes, the Arrow tables and the Parquet schema are all derived
from `FORMATS`; `format_spec` is the one place an unknown format name is refused.
"""

from __future__ import annotations

from typing import Any

from exports.formats.red_team import RED_TEAM_FORMAT, RED_TEAM_FORMAT_CHOICES
from exports.formats.sft import SFT_FORMAT_CHOICES, SFT_FORMAT_NAMES
from exports.formats.spec import (
    FormatSpec,
    ValueType,
    completion_column,
    label_column,
    pair_column,
    prompt_column,
    response_columns,
)
from exports.pairs import PromptData, ResponseData

Message = dict[str, Any]

_ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


# --- renderings the formats share -------------------------------------------------------


def prompt_messages(prompt: PromptData) -> list[Message]:
    """The conversation as plain `{role, content}` messages (copies: other keys dropped)."""
    return [{"role": message["role"], "content": message["content"]} for message in prompt.messages]


def prompt_text(prompt: PromptData) -> str:
    """The conversation as one string: a lone user message as is, otherwise role-prefixed turns."""
    messages = prompt.messages
    if len(messages) == 1 and messages[0]["role"] == "user":
        return str(messages[0]["content"])
    return "\n\n".join(
        f"{_ROLE_LABELS.get(message['role'], str(message['role']).title())}: {message['content']}"
        for message in messages
    )


def hh_rlhf_transcript(prompt: PromptData) -> str:
    """The conversation as `\\n\\nHuman: … \\n\\nAssistant: …` turns.

    HH-RLHF has no system turn, so system text is folded in front of the next Human turn.
    """
    parts: list[str] = []
    pending_system: list[str] = []
    for message in prompt.messages:
        role, content = message["role"], str(message["content"])
        if role == "system":
            pending_system.append(content)
        elif role == "assistant":
            parts.append(f"\n\nAssistant: {content}")
        else:
            parts.append("\n\nHuman: " + "\n\n".join([*pending_system, content]))
            pending_system = []
    if pending_system:
        parts.append("\n\nHuman: " + "\n\n".join(pending_system))
    return "".join(parts)


def _text(prompt: PromptData, response: ResponseData) -> str:
    return response.text


def _assistant(prompt: PromptData, response: ResponseData) -> list[Message]:
    return [{"role": "assistant", "content": response.text}]


def _transcript(prompt: PromptData, response: ResponseData) -> str:
    return f"{hh_rlhf_transcript(prompt)}\n\nAssistant: {response.text}"


def _conversation(prompt: PromptData, response: ResponseData) -> list[Message]:
    return [*prompt_messages(prompt), {"role": "assistant", "content": response.text}]


def _score(prompt: PromptData, response: ResponseData) -> float | None:
    if prompt.scores is None:
        raise ValueError("this format needs the responses' scores (PromptData.scores)")
    return prompt.scores.get(response.response_id)


# --- the formats ------------------------------------------------------------------------

_PROMPT_TEXT = prompt_column("prompt", ValueType.TEXT, prompt_text)
_TEXTS = response_columns("chosen", "rejected", ValueType.TEXT, _text)


FORMATS: tuple[FormatSpec, ...] = (
    FormatSpec(
        name="trl",
        label="TRL preference (strings)",
        summary="TRL preference, standard: prompt, chosen and rejected strings (DPOTrainer).",
        tags=("dpo", "trl"),
        columns=(_PROMPT_TEXT, *_TEXTS),
    ),
    FormatSpec(
        name="trl-conversational",
        label="TRL preference (messages)",
        summary="TRL preference, conversational: message lists with role/content.",
        tags=("dpo", "trl", "conversational"),
        columns=(
            prompt_column("prompt", ValueType.MESSAGES, prompt_messages),
            *response_columns("chosen", "rejected", ValueType.MESSAGES, _assistant),
        ),
    ),
    FormatSpec(
        name="trl-reward",
        label="TRL reward with margin",
        summary="TRL reward modelling: chosen/rejected with a margin (RewardTrainer).",
        tags=("reward-modeling", "trl"),
        columns=(_PROMPT_TEXT, *_TEXTS, pair_column("margin", ValueType.FLOAT)),
    ),
    FormatSpec(
        name="trl-unpaired",
        label="TRL unpaired (KTO)",
        summary="TRL unpaired preference (KTOTrainer): a true and a false row per pair.",
        tags=("kto", "trl"),
        columns=(
            _PROMPT_TEXT,
            completion_column("completion", ValueType.TEXT, _text),
            label_column("label"),
        ),
        expresses_ties=False,
    ),
    FormatSpec(
        name="openai",
        label="OpenAI preference fine-tuning",
        summary="OpenAI preference fine-tuning: input.messages, preferred/non-preferred output.",
        tags=("openai", "preference-fine-tuning"),
        columns=(
            prompt_column(
                "input",
                ValueType.CONVERSATION,
                lambda prompt: {"messages": prompt_messages(prompt)},
            ),
            *response_columns(
                "preferred_output", "non_preferred_output", ValueType.MESSAGES, _assistant
            ),
        ),
    ),
    FormatSpec(
        name="hh-rlhf",
        label="HH-RLHF transcripts",
        summary="Anthropic HH-RLHF transcripts: chosen/rejected as Human/Assistant turns.",
        tags=("hh-rlhf",),
        columns=response_columns("chosen", "rejected", ValueType.TEXT, _transcript),
    ),
    FormatSpec(
        name="ultrafeedback",
        label="UltraFeedback binarized",
        summary="UltraFeedback binarized (HuggingFaceH4/ultrafeedback_binarized): chosen and "
        "rejected as whole conversations, with score_chosen/score_rejected on a 1-10 scale: "
        "1 + 9 x the share of the response's pairwise comparisons it won across the prompt's "
        "rankings (a tie counts half). prompt_id is Ranklab's prompt id, not a text hash.",
        tags=("ultrafeedback", "dpo"),
        columns=(
            _PROMPT_TEXT,
            prompt_column("prompt_id", ValueType.INTEGER, lambda prompt: prompt.prompt_id),
            *response_columns("chosen", "rejected", ValueType.MESSAGES, _conversation),
            *response_columns(
                "score_chosen", "score_rejected", ValueType.FLOAT, _score, needs_scores=True
            ),
        ),
    ),
)

_BY_NAME = {spec.name: spec for spec in FORMATS}
FORMAT_NAMES: tuple[str, ...] = tuple(_BY_NAME)
FORMAT_CHOICES: list[tuple[str, str]] = [(spec.name, spec.label) for spec in FORMATS]
# Record formats: one row per authored record rather than per pair, each for one task kind
# (`exports.records` holds where their rows come from; `exports.services.record_jobs` writes
# them). Every format an export job can write: the pair formats, then the record formats.
RECORD_FORMAT_KINDS: dict[str, str] = {
    **dict.fromkeys(SFT_FORMAT_NAMES, "demonstration"),
    RED_TEAM_FORMAT: "red_team",
}
RECORD_FORMAT_NAMES: tuple[str, ...] = tuple(RECORD_FORMAT_KINDS)
EXPORT_FORMAT_NAMES: tuple[str, ...] = FORMAT_NAMES + RECORD_FORMAT_NAMES
EXPORT_FORMAT_CHOICES: list[tuple[str, str]] = (
    FORMAT_CHOICES + SFT_FORMAT_CHOICES + RED_TEAM_FORMAT_CHOICES
)
DEFAULT_FORMAT = "trl"


def format_spec(name: str) -> FormatSpec:
    """The pair format of that name; the one place an unknown format is refused (the SFT
    formats are `exports.formats.sft.sft_format`'s)."""
    spec = _BY_NAME.get(name)
    if spec is None:
        raise ValueError(f"unknown export format {name!r}; expected one of {sorted(_BY_NAME)}")
    return spec


def formats_with_column(name: str) -> list[str]:
    """Names of the formats with an own column of that name (e.g. `margin`)."""
    return [spec.name for spec in FORMATS if spec.has_column(name)]
