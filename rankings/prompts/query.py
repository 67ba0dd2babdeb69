"""The prompt browser's query: every parameter declared once, validated into a
`BrowseQuery` (a 400 naming the field otherwise), and the keyset cursor that pages it."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from core.errors import InvalidInput


class PromptState:
    UNTOUCHED = "untouched"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    GOLD = "gold"
    REOPENED = "reopened"
    SKIPPED = "skipped"
    ARCHIVED = "archived"


STATES = {
    PromptState.UNTOUCHED: "Untouched",
    PromptState.IN_PROGRESS: "In progress",
    PromptState.COMPLETE: "Complete",
    PromptState.GOLD: "Gold",
    PromptState.REOPENED: "Reopened for more raters",
    PromptState.SKIPPED: "Skipped by a rater",
    PromptState.ARCHIVED: "Archived",
}

# ordering → (label, key columns); every key ends with the prompt id so it is total.
ORDERINGS = {
    "newest": "Newest first",
    "oldest": "Oldest first",
    "agreement": "Lowest agreement first",
    "-agreement": "Highest agreement first",
    "most_skipped": "Most skipped first",
}
AGREEMENT_ORDERINGS = ("agreement", "-agreement")
DEFAULT_ORDERING = "newest"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_QUERY_LENGTH = 200
MAX_MODEL_LENGTH = 200

PARAMETERS = (
    "state",
    "q",
    "model",
    "ordering",
    "agreement_min",
    "agreement_max",
    "flagged",
    "cursor",
    "page_size",
)
# DRF's own: `format` picks the renderer (?format=json).
IGNORED_PARAMETERS = ("format",)
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


@dataclass(frozen=True)
class BrowseQuery:
    state: str = ""
    q: str = ""
    model: str = ""
    ordering: str = DEFAULT_ORDERING
    agreement_min: float | None = None
    agreement_max: float | None = None
    flagged: bool | None = None
    after: tuple[Any, ...] | None = None  # the last row's key on the page before
    page_size: int = DEFAULT_PAGE_SIZE

    @property
    def uses_agreement(self) -> bool:
        return (
            self.ordering in AGREEMENT_ORDERINGS
            or self.agreement_min is not None
            or self.agreement_max is not None
        )

    def params(self, *, after: tuple[Any, ...] | None = None) -> dict[str, str]:
        """The query as URL parameters (defaults left out), for the next page's link."""
        values: dict[str, str] = {}
        for name, value in (
            ("state", self.state),
            ("q", self.q),
            ("model", self.model),
            ("ordering", "" if self.ordering == DEFAULT_ORDERING else self.ordering),
            ("agreement_min", _number_text(self.agreement_min)),
            ("agreement_max", _number_text(self.agreement_max)),
            ("flagged", "" if self.flagged is None else str(self.flagged).lower()),
            ("page_size", "" if self.page_size == DEFAULT_PAGE_SIZE else str(self.page_size)),
        ):
            if value:
                values[name] = value
        if after is not None:
            values["cursor"] = cursor_encode(ordering=self.ordering, key=after)
        return values

    def without_cursor(self) -> BrowseQuery:
        return replace(self, after=None)


def _number_text(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def browse_query_parse(params: Mapping[str, str], *, allow: tuple[str, ...] = ()) -> BrowseQuery:
    """Validate the browser's query parameters; unknown ones are refused by name."""
    for name in params:
        if name not in PARAMETERS and name not in IGNORED_PARAMETERS and name not in allow:
            raise InvalidInput(
                f"{name}: unknown parameter; known ones are {', '.join(PARAMETERS)}", field=name
            )
    state = _choice(params, "state", STATES)
    ordering = _choice(params, "ordering", ORDERINGS) or DEFAULT_ORDERING
    q = _text(params, "q", MAX_QUERY_LENGTH)
    model = _text(params, "model", MAX_MODEL_LENGTH)
    low = _share(params, "agreement_min")
    high = _share(params, "agreement_max")
    if low is not None and high is not None and low > high:
        raise InvalidInput("agreement_min: must not be above agreement_max", field="agreement_min")
    page_size = _whole(params, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    after = cursor_decode(params.get("cursor", ""), ordering=ordering)
    return BrowseQuery(
        state=state,
        q=q,
        model=model,
        ordering=ordering,
        agreement_min=low,
        agreement_max=high,
        flagged=_boolean(params, "flagged"),
        after=after,
        page_size=page_size,
    )


def _choice(params: Mapping[str, str], name: str, choices: Mapping[str, str]) -> str:
    value = params.get(name, "").strip()
    if value and value not in choices:
        raise InvalidInput(f"{name}: must be one of {', '.join(choices)}", field=name)
    return value


def _text(params: Mapping[str, str], name: str, limit: int) -> str:
    value = params.get(name, "").strip()
    if len(value) > limit:
        raise InvalidInput(f"{name}: at most {limit} characters", field=name)
    if "\x00" in value:
        raise InvalidInput(f"{name}: must not contain NUL characters", field=name)
    return value


def _share(params: Mapping[str, str], name: str) -> float | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{name}: must be a number from 0 to 1", field=name) from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidInput(f"{name}: must be a number from 0 to 1", field=name)
    return value


def _whole(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise InvalidInput(f"{name}: must be a whole number from {low} to {high}", field=name)
    value = int(raw)
    if not low <= value <= high:
        raise InvalidInput(f"{name}: must be a whole number from {low} to {high}", field=name)
    return value


def _boolean(params: Mapping[str, str], name: str) -> bool | None:
    raw = params.get(name, "").strip().lower()
    if not raw:
        return None
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise InvalidInput(f"{name}: must be true or false", field=name)


# Cursor ---------------------------------------------------------------------------------------
# A cursor is the ordering and the last row's key, as JSON in URL-safe base64: opaque to
# clients, checked on the way back in (a cursor of another ordering or a forged one is 400).

KEY_SHAPES: dict[str, tuple[type, ...]] = {
    "newest": (int,),
    "oldest": (int,),
    "agreement": (float, int),
    "-agreement": (float, int),
    "most_skipped": (int, int),
}


def cursor_encode(*, ordering: str, key: tuple[Any, ...]) -> str:
    raw = orjson.dumps([ordering, list(key)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(text: str, *, ordering: str) -> tuple[Any, ...] | None:
    text = text.strip()
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        decoded = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise InvalidInput("cursor: not a cursor this list gave out", field="cursor") from None
    if not (isinstance(decoded, list) and len(decoded) == 2 and isinstance(decoded[1], list)):
        raise InvalidInput("cursor: not a cursor this list gave out", field="cursor")
    cursor_ordering, key = decoded
    if cursor_ordering != ordering:
        raise InvalidInput(
            "cursor: belongs to another ordering; start again from the first page",
            field="cursor",
        )
    shape = KEY_SHAPES[ordering]
    if len(key) != len(shape):
        raise InvalidInput("cursor: not a cursor this list gave out", field="cursor")
    pairs = list(zip(key, shape, strict=True))
    if not all(_fits(value, kind) for value, kind in pairs):
        raise InvalidInput("cursor: not a cursor this list gave out", field="cursor")
    return tuple(float(value) if kind is float else value for value, kind in pairs)


def _fits(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, int) and 0 <= value < 2**63
