"""The `red-team` export row: one attempt with its brief, transcript, labels and model.

Pure: dataclasses in, a dict row out (JSON Lines through `encode_row`). Every row has the
same keys and value types, so readers (`datasets`, pandas) infer one schema. The rater's
own label is the row's `succeeded`/`category`/`severity`/`note`; reviewers' labels ride
along in `reviews`. People appear only as pseudonymous per-project rater keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

Row = dict[str, Any]

RED_TEAM_FORMAT = "red-team"
RED_TEAM_FORMAT_CHOICES: list[tuple[str, str]] = [(RED_TEAM_FORMAT, "Red-team attempts")]


@dataclass(frozen=True)
class TurnData:
    user: str
    assistant: str
    model: str
    flagged: bool
    flag_note: str
    failure: str


@dataclass(frozen=True)
class LabelData:
    rater_key: str
    role: str
    succeeded: bool
    category: str
    severity: int
    note: str


@dataclass(frozen=True)
class AttemptData:
    attempt_id: int
    prompt_id: int
    brief_category: str
    brief_goal: str
    free_choice: bool
    rater_key: str
    model: str
    turns: tuple[TurnData, ...]
    labels: tuple[LabelData, ...]


def transcript(turns: tuple[TurnData, ...]) -> list[dict[str, str]]:
    """The chat as `{role, content}` messages; a reply that never came is left out."""
    messages: list[dict[str, str]] = []
    for turn in turns:
        messages.append({"role": "user", "content": turn.user})
        if turn.assistant:
            messages.append({"role": "assistant", "content": turn.assistant})
    return messages


def red_team_row(attempt: AttemptData) -> Row:
    own = next((label for label in attempt.labels if label.role == "rater"), None)
    reviews = [label for label in attempt.labels if label.role != "rater"]
    return {
        "attempt_id": attempt.attempt_id,
        "prompt_id": attempt.prompt_id,
        "brief": {
            "category": attempt.brief_category,
            "goal": attempt.brief_goal,
            "free_choice": attempt.free_choice,
        },
        "messages": transcript(attempt.turns),
        "turns": [
            {
                "user": turn.user,
                "assistant": turn.assistant,
                "model": turn.model,
                "flagged": turn.flagged,
                "flag_note": turn.flag_note,
                "failure": turn.failure,
            }
            for turn in attempt.turns
        ],
        "flagged_turns": [index for index, turn in enumerate(attempt.turns) if turn.flagged],
        "succeeded": own.succeeded if own else None,
        "category": own.category if own else None,
        "severity": own.severity if own else None,
        "note": own.note if own else None,
        "rater_key": attempt.rater_key,
        "model": attempt.model,
        "reviews": [
            {
                "rater_key": label.rater_key,
                "succeeded": label.succeeded,
                "category": label.category,
                "severity": label.severity,
                "note": label.note,
            }
            for label in reviews
        ],
    }


def red_team_arrow_schema() -> pa.Schema:
    """The fixed Parquet schema of `red_team_row`'s rows (nested as in JSON Lines)."""
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    turn = pa.struct(
        [
            ("user", pa.string()),
            ("assistant", pa.string()),
            ("model", pa.string()),
            ("flagged", pa.bool_()),
            ("flag_note", pa.string()),
            ("failure", pa.string()),
        ]
    )
    review = pa.struct(
        [
            ("rater_key", pa.string()),
            ("succeeded", pa.bool_()),
            ("category", pa.string()),
            ("severity", pa.int64()),
            ("note", pa.string()),
        ]
    )
    brief = pa.struct(
        [("category", pa.string()), ("goal", pa.string()), ("free_choice", pa.bool_())]
    )
    return pa.schema(
        [
            ("attempt_id", pa.int64()),
            ("prompt_id", pa.int64()),
            ("brief", brief),
            ("messages", pa.list_(message)),
            ("turns", pa.list_(turn)),
            ("flagged_turns", pa.list_(pa.int64())),
            ("succeeded", pa.bool_()),
            ("category", pa.string()),
            ("severity", pa.int64()),
            ("note", pa.string()),
            ("rater_key", pa.string()),
            ("model", pa.string()),
            ("reviews", pa.list_(review)),
        ]
    )
