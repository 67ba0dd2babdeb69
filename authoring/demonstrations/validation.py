"""Check what a writer or reviewer of demonstrations sends; no database access."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authoring.demonstrations.models import ReviewDecision
from core.errors import InvalidInput
from rankings.rating.validation import RankingProblem, clean_seconds

MAX_TEXT_CHARS = 20_000
MAX_REASON_CHARS = 2_000


def clean_text(raw: Any, *, field: str = "text") -> str:
    """Markdown text with line endings normalised (browsers send CRLF), trimmed."""
    if not isinstance(raw, str):
        raise InvalidInput("must be text", field=field)
    text = raw.replace("\r\n", "\n").replace("\r", "\n").strip()
    if "\x00" in text:
        raise InvalidInput("must not contain NUL characters", field=field)
    if not text:
        raise InvalidInput("write the reply: it is empty", field=field)
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInput(f"must be at most {MAX_TEXT_CHARS} characters", field=field)
    return text


def clean_reason(raw: Any, *, required: bool) -> str:
    """A reviewer's reason, trimmed; `required` when they reject."""
    if raw is not None and not isinstance(raw, str):
        raise InvalidInput("must be text", field="reason")
    reason = (raw or "").strip()
    if "\x00" in reason:
        raise InvalidInput("must not contain NUL characters", field="reason")
    if required and not reason:
        raise InvalidInput("say why you reject this demonstration", field="reason")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(f"must be at most {MAX_REASON_CHARS} characters", field="reason")
    return reason


def clean_active_seconds(raw: Any) -> float | None:
    """The active seconds a writer spent, checked as a ranking's are."""
    try:
        return clean_seconds(raw)
    except RankingProblem as problem:
        raise InvalidInput(problem.message, field=problem.field) from None


@dataclass(frozen=True)
class ReviewInput:
    decision: str
    reason: str
    edited_text: str


def clean_review(*, decision: Any, reason: Any = None, text: Any = None) -> ReviewInput:
    """accept, edit (with the edited `text`) or reject (with a `reason`)."""
    if decision not in ReviewDecision.values:
        raise InvalidInput(f"must be one of: {', '.join(ReviewDecision.values)}", field="decision")
    reason_text = clean_reason(reason, required=decision == ReviewDecision.REJECT)
    edited = ""
    if decision == ReviewDecision.EDIT:
        edited = clean_text(text)
    elif text not in (None, ""):
        raise InvalidInput("only an edit carries a text", field="text")
    return ReviewInput(decision=decision, reason=reason_text, edited_text=edited)
