"""Simulated raters, shared by the crowd simulations (through the API and on arrays).

Each prompt has a latent true order (one utility per response). A rater's ``Behaviour``
says how they rank a task: carefully (the utilities seen through noise, close ones tied), or,
for a share of their tasks, by a shortcut: at random, in the shown order, or longest first.
Seconds are log-normal around the behaviour's median. Every draw comes from the rater's own
seeded ``random.Random``.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field

import numpy as np

from rankings.runs.data import AgreementData
from rankings.stats.tables import RankingContext, RankingTable, ranks_from_groups

RANDOM_ORDER = "random"
SHOWN_ORDER = "shown_order"
LONGEST_FIRST = "longest_first"


@dataclass(frozen=True)
class Behaviour:
    kind: str
    noise: float = 0.3  # perceived utility = true utility + N(0, noise)
    shortcut: str | None = None
    shortcut_share: float = 0.0  # share of tasks ranked by the shortcut
    seconds: float = 40.0  # median active seconds
    seconds_spread: float = 0.35
    tie_margin: float = 0.08  # careful ranking ties responses perceived this close
    bad: bool = False

    def rank(
        self,
        shown: list[int],
        utility: dict[int, float],
        length: dict[int, float],
        rng: random.Random,
    ) -> list[list[int]]:
        """Tie groups best first for responses shown in this order."""
        if self.shortcut is not None and (
            self.shortcut_share >= 1.0 or rng.random() < self.shortcut_share
        ):
            if self.shortcut == RANDOM_ORDER:
                order = shown[:]
                rng.shuffle(order)
            elif self.shortcut == SHOWN_ORDER:
                order = shown
            else:
                order = sorted(shown, key=lambda response: -length[response])
            return [[response] for response in order]
        perceived = {response: utility[response] + rng.gauss(0, self.noise) for response in shown}
        order = sorted(shown, key=lambda response: -perceived[response])
        groups = [[order[0]]]
        for previous, response in itertools.pairwise(order):
            if perceived[previous] - perceived[response] < self.tie_margin:
                groups[-1].append(response)
            else:
                groups.append([response])
        return groups

    def time(self, rng: random.Random) -> float:
        return round(self.seconds * math.exp(rng.gauss(0, self.seconds_spread)), 1)


def careful(noise: float = 0.3) -> Behaviour:
    return Behaviour("careful", noise=noise)


# The blatant kinds of tests/rankings/quality/test_simulation.py.
RANDOM_CLICKER = Behaviour("random", shortcut=RANDOM_ORDER, shortcut_share=1.0, seconds=20.0)
ALWAYS_FIRST = Behaviour("always_first", shortcut=SHOWN_ORDER, shortcut_share=0.8, seconds=30.0)
TOO_FAST = Behaviour(
    "too_fast", shortcut=SHOWN_ORDER, shortcut_share=1.0, seconds=2.0, seconds_spread=0.25
)

# The subtle kinds: wrong only some of the time, or just sloppier than the rest.
HALF_RANDOM = Behaviour(
    "half_random", shortcut=RANDOM_ORDER, shortcut_share=0.5, seconds=30.0, bad=True
)
FIRST_SHOWN_70 = Behaviour(
    "first_shown_70", shortcut=SHOWN_ORDER, shortcut_share=0.7, seconds=30.0, bad=True
)
LONGEST_FIRST_70 = Behaviour(
    "longest_first_70", shortcut=LONGEST_FIRST, shortcut_share=0.7, seconds=30.0, bad=True
)
NOISY_FAST = Behaviour("noisy_fast", noise=1.5, seconds=14.0, bad=True)

#: Careful raters differ: perception noise drawn from this range, one value per rater.
CAREFUL_NOISE = (0.2, 0.45)
#: Utility leans a little toward longer responses, as it does in real data.
LENGTH_EFFECT = 0.25


@dataclass
class SimulatedProject:
    """A project ranked by a simulated crowd, as the arrays an agreement run computes on."""

    data: AgreementData
    behaviours: list[Behaviour]
    rankings_per_rater: list[int] = field(default_factory=list)

    @property
    def bad(self) -> set[int]:
        return {index for index, behaviour in enumerate(self.behaviours) if behaviour.bad}


def subtle_crowd(careful_raters: int = 24, subtle: bool = True, seed: int = 0) -> list[Behaviour]:
    """Careful raters with realistic noise and, if ``subtle``, ten subtly bad ones."""
    rng = random.Random(f"crowd-{seed}")
    crowd = [careful(rng.uniform(*CAREFUL_NOISE)) for _ in range(careful_raters)]
    if subtle:
        crowd += [HALF_RANDOM] * 3 + [FIRST_SHOWN_70] * 2 + [LONGEST_FIRST_70] * 2
        crowd += [NOISY_FAST] * 3
    return crowd


def simulate(
    behaviours: list[Behaviour], *, prompts: int, k: int = 4, overlap: int = 4, seed: int = 0
) -> SimulatedProject:
    """Every prompt ranked by ``overlap`` distinct raters, those with fewest tasks first;
    responses of varied length, shown in a fresh random order each time."""
    rng = random.Random(seed)
    raters = [random.Random(f"{seed}-{index}") for index in range(len(behaviours))]
    done = [0] * len(behaviours)
    prompt_index, rater_index, ranks, shown_slots, seconds = [], [], [], [], []
    lengths = np.zeros((prompts, k))
    slot_of = {slot: slot for slot in range(k)}
    for prompt in range(prompts):
        length = {slot: rng.lognormvariate(6.0, 0.5) for slot in range(k)}
        mean = sum(math.log(value) for value in length.values()) / k
        utility = {
            slot: LENGTH_EFFECT * (math.log(length[slot]) - mean) / 0.5
            + math.sqrt(1 - LENGTH_EFFECT**2) * rng.gauss(0, 1)
            for slot in range(k)
        }
        lengths[prompt] = [round(length[slot]) for slot in range(k)]
        chosen = sorted(range(len(behaviours)), key=lambda rater: (done[rater], rng.random()))
        for rater in chosen[:overlap]:
            shown = list(range(k))
            rng.shuffle(shown)
            behaviour = behaviours[rater]
            groups = behaviour.rank(shown, utility, length, raters[rater])
            prompt_index.append(prompt)
            rater_index.append(rater)
            ranks.append(ranks_from_groups(groups, slot_of, k))
            shown_slots.append(shown)
            seconds.append(behaviour.time(raters[rater]))
            done[rater] += 1
    n = len(prompt_index)
    table = RankingTable(
        prompt_index=np.array(prompt_index, dtype=np.int64),
        rater_index=np.array(rater_index, dtype=np.int64),
        ranks=np.array(ranks).reshape(n, k),
        n_prompts=prompts,
        n_raters=len(behaviours),
    )
    context = RankingContext(
        is_repeat=np.zeros(n, dtype=bool),
        shown_slots=np.array(shown_slots, dtype=np.int8).reshape(n, k),
        seconds=np.array(seconds),
        gold_ranks=np.full((prompts, k), np.nan),
        response_length=lengths,
    )
    data = AgreementData(
        table=table,
        context=context,
        rater_user_ids=list(range(len(behaviours))),
        prompt_ids=np.arange(prompts, dtype=np.int64),
        response_ids=np.arange(prompts * k, dtype=np.int64).reshape(prompts, k),
        ranking_ids=np.arange(n, dtype=np.int64),
    )
    return SimulatedProject(data=data, behaviours=behaviours, rankings_per_rater=done)
