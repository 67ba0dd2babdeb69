"""The simulated crowd: who is in it and how each kind of rater judges a task.

No Django: the shown responses with their latent qualities go in, what the rater submits
comes out (a ranking, rubric ratings, a rationale, seconds, a pairwise strength). Careful
raters see the latent quality through noise; the random clicker ignores the responses; the
always-first clicker keeps the shown order. Every decision draws from the rater's own seeded
``random.Random``, so the same demo is built every time.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from demo.scenario import INACCURATE, UNSAFE

CAREFUL = "careful"
RANDOM_CLICKER = "random clicker"
ALWAYS_FIRST = "always-first clicker"

TIE_MARGIN = 0.04  # a careful rater ties responses they perceive this close (if allowed)
ALWAYS_FIRST_KEEPS_ORDER = 0.9  # the rest of the time they swap one adjacent pair
STRENGTH_STEPS = ((0.4, 3), (0.18, 2), (0.0, 1))  # perceived gap → much better … slightly


@dataclass(frozen=True)
class CrowdProfile:
    username: str
    kind: str
    noise: float = 0.0  # standard deviation of a careful rater's perceived quality
    chars_per_second: float | None = None  # reading speed; None: does not read
    think_seconds: float = 10.0  # deciding and clicking, on top of reading
    rubric_share: float = 0.0  # share of tasks with the rubric filled in
    rationale_share: float = 0.0  # share of tasks with a rationale when it is optional


CROWD: tuple[CrowdProfile, ...] = (
    CrowdProfile("crowd-ana", CAREFUL, 0.06, 28.0, 14.0, 0.95, 0.5),
    CrowdProfile("crowd-ben", CAREFUL, 0.08, 34.0, 10.0, 0.8, 0.3),
    CrowdProfile("crowd-chidi", CAREFUL, 0.10, 22.0, 18.0, 0.9, 0.6),
    CrowdProfile("crowd-dana", CAREFUL, 0.12, 40.0, 8.0, 0.6, 0.2),
    CrowdProfile("crowd-emil", CAREFUL, 0.09, 25.0, 12.0, 0.7, 0.4),
    CrowdProfile("crowd-finn", RANDOM_CLICKER, think_seconds=5.0, rubric_share=0.3),
    CrowdProfile("crowd-gwen", ALWAYS_FIRST, think_seconds=7.0, rationale_share=0.1),
)
BAD_KINDS = frozenset({RANDOM_CLICKER, ALWAYS_FIRST})

LAZY_RATIONALES = {
    RANDOM_CLICKER: ("ok", "fine", "looks good", "all similar", "B", "idk, C maybe", "good"),
    ALWAYS_FIRST: ("A best", "first one", "A", "in order", "top is best", "A > B"),
}
CAREFUL_RATIONALES = (
    "{best} {best_note}; {worst} {worst_note}.",
    "{best} is best: it {best_note}. {worst} {worst_note}.",
    "Ranked {best} first because it {best_note}, and {worst} last because it {worst_note}.",
)
CAREFUL_TIE_RATIONALE = "About the same: {best} {best_note}, and {worst} {worst_note}."


@dataclass(frozen=True)
class ShownResponse:
    """A response as the rater sees it (in shown order), with what only the simulation knows."""

    response_id: int
    length: int
    quality: float
    note: str
    flaws: frozenset[str]


@dataclass(frozen=True)
class Task:
    responses: tuple[ShownResponse, ...]  # in shown order
    allow_ties: bool
    rubric: Sequence[dict[str, Any]]
    rationale_required: bool

    @property
    def pairwise(self) -> bool:
        return len(self.responses) == 2


@dataclass(frozen=True)
class Judgement:
    """What the rater submits, in the shape the ranking submit service takes."""

    ranking: list[list[int]]
    ratings: dict[str, dict[str, int]]
    rationale: str
    seconds: float
    strength: int | None


def judge(profile: CrowdProfile, task: Task, rng: random.Random) -> Judgement:
    perceived = {
        shown.response_id: shown.quality + rng.gauss(0, profile.noise) for shown in task.responses
    }
    if profile.kind == CAREFUL:
        ranking = _careful_ranking(task, perceived)
    elif profile.kind == RANDOM_CLICKER:
        ranking = _random_ranking(task, rng)
    else:
        ranking = _always_first_ranking(task, rng)
    return Judgement(
        ranking=ranking,
        ratings=_ratings(profile, task, perceived, rng),
        rationale=_rationale(profile, task, ranking, rng),
        seconds=_seconds(profile, task, rng),
        strength=_strength(profile, task, ranking, perceived, rng) if task.pairwise else None,
    )


def _careful_ranking(task: Task, perceived: dict[int, float]) -> list[list[int]]:
    order = sorted(perceived, key=lambda response_id: -perceived[response_id])
    groups = [[order[0]]]
    for previous, response_id in itertools.pairwise(order):
        if task.allow_ties and perceived[previous] - perceived[response_id] < TIE_MARGIN:
            groups[-1].append(response_id)
        else:
            groups.append([response_id])
    return groups


def _random_ranking(task: Task, rng: random.Random) -> list[list[int]]:
    order = [shown.response_id for shown in task.responses]
    rng.shuffle(order)
    return [[response_id] for response_id in order]


def _always_first_ranking(task: Task, rng: random.Random) -> list[list[int]]:
    order = [shown.response_id for shown in task.responses]
    if rng.random() > ALWAYS_FIRST_KEEPS_ORDER:
        swap = rng.randrange(len(order) - 1)
        order[swap], order[swap + 1] = order[swap + 1], order[swap]
    return [[response_id] for response_id in order]


def _strength(
    profile: CrowdProfile,
    task: Task,
    ranking: list[list[int]],
    perceived: dict[int, float],
    rng: random.Random,
) -> int:
    """3 much better, 2 better, 1 slightly better, 0 about the same (with a tie)."""
    if len(ranking) == 1:
        return 0
    if profile.kind != CAREFUL:
        return rng.choice((1, 2, 3, 3)) if profile.kind == RANDOM_CLICKER else 2
    gap = abs(perceived[ranking[0][0]] - perceived[ranking[1][0]])
    return next(strength for floor, strength in STRENGTH_STEPS if gap >= floor)


def _ratings(
    profile: CrowdProfile, task: Task, perceived: dict[int, float], rng: random.Random
) -> dict[str, dict[str, int]]:
    scales = [item for item in task.rubric if item.get("kind", "scale") == "scale"]
    if not scales or rng.random() >= profile.rubric_share:
        return {}
    ratings: dict[str, dict[str, int]] = {}
    for shown in task.responses:
        values = {}
        for item in scales:
            low, high = int(item["min"]), int(item["max"])
            if profile.kind == CAREFUL:
                score = _careful_score(item["key"], shown, perceived[shown.response_id], rng)
                values[item["key"]] = max(low, min(high, round(low + score * (high - low))))
            else:
                values[item["key"]] = rng.randint(low, high)
        ratings[str(shown.response_id)] = values
    return ratings


def _careful_score(key: str, shown: ShownResponse, perceived: float, rng: random.Random) -> float:
    """0..1 on one rubric scale: honest and harmless follow the flaws, the rest quality."""
    if key == "honest":
        return 0.15 if INACCURATE in shown.flaws else 0.8 + 0.2 * perceived + rng.gauss(0, 0.05)
    if key == "harmless":
        return 0.05 if UNSAFE in shown.flaws else 0.95 + rng.gauss(0, 0.03)
    return perceived + rng.gauss(0, 0.05)


def _rationale(
    profile: CrowdProfile, task: Task, ranking: list[list[int]], rng: random.Random
) -> str:
    if not task.rationale_required and rng.random() >= profile.rationale_share:
        return ""
    if profile.kind != CAREFUL:
        return rng.choice(LAZY_RATIONALES[profile.kind])
    position = {shown.response_id: index for index, shown in enumerate(task.responses)}
    best, worst = ranking[0][0], ranking[-1][-1]
    template = CAREFUL_TIE_RATIONALE if len(ranking) == 1 else rng.choice(CAREFUL_RATIONALES)
    return template.format(
        best=chr(ord("A") + position[best]),
        best_note=task.responses[position[best]].note,
        worst=chr(ord("A") + position[worst]),
        worst_note=task.responses[position[worst]].note,
    )


def _seconds(profile: CrowdProfile, task: Task, rng: random.Random) -> float:
    """Active seconds: reading (careful raters read everything) plus deciding, log-normal."""
    reading = (
        sum(shown.length for shown in task.responses) / profile.chars_per_second
        if profile.chars_per_second
        else 0.0
    )
    return round((reading + profile.think_seconds) * math.exp(rng.gauss(0, 0.25)), 1)
