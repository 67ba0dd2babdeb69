"""Can this judge be trusted? Its agreement with human rankings, pure: response-pair labels
in, numbers out (no Django here).

Every ranking becomes one label per response pair (a, b) with a < b: +1 a better, -1 b
better, 0 tie. Agreement is the share of compared labels that are equal; kappa corrects it
for chance with pooled marginals in which the two "better" labels are symmetric (the pair
orientation is arbitrary), as the project statistics do. The judge is compared with:
- the human consensus (the majority label of a pair; pairs without a majority are left out),
- each human rater on the pairs both labelled,
- all humans at once, set beside each human's leave-one-out agreement with the others (is
  the judge better than the median rater?),
with bootstrap intervals over prompts, and with gold rankings.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from rankings.stats.agreement import wilson_bounds
from rankings.stats.bootstrap import percentile_interval
from rankings.stats.tables import orientation_free

Groups = list[list[int]]


@dataclass(frozen=True)
class PromptRankings:
    prompt_id: int
    response_ids: list[int]
    judge: Groups | None
    humans: dict[int, Groups] = field(default_factory=dict)  # rater id → ranking
    gold: Groups | None = None


def pair_labels(groups: Groups, response_ids: list[int]) -> dict[tuple[int, int], int]:
    level = {item: index for index, group in enumerate(groups) for item in group}
    labels = {}
    for a, b in combinations(sorted(response_ids), 2):
        if a in level and b in level:
            labels[(a, b)] = (level[a] < level[b]) - (level[a] > level[b])
    return labels


def kappa(first: list[int], second: list[int]) -> float | None:
    """Agreement beyond chance of two label lists; pooled, orientation-free marginals."""
    n = len(first)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(first, second, strict=True)) / n
    pooled = [(first + second).count(label) for label in (-1, 0, 1)]
    shares = orientation_free(pooled) / (2 * n)  # the project statistics' one rule
    chance = float((shares**2).sum())
    if chance >= 1:
        return None
    return (observed - chance) / (1 - chance)


def majority(labels: list[int]) -> int | None:
    counts = Counter(labels).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def _ratio(agree: float, total: float) -> float | None:
    return agree / total if total else None


@dataclass
class _Sums:
    """Per prompt: agreeing and compared label counts, for the bootstrap."""

    agree: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)

    def add(self, agree: float, total: float) -> None:
        self.agree.append(agree)
        self.total.append(total)


def calibrate(
    prompts: list[PromptRankings], *, resamples: int = 1000, seed: int = 0, worst: int = 10
) -> dict[str, Any]:
    judged = [p for p in prompts if p.judge is not None]
    rater_ids = sorted({rater for p in judged for rater in p.humans})
    index_of = {rater: index for index, rater in enumerate(rater_ids)}
    n_prompts = len(judged)
    consensus_sums, humans_sums = _Sums(), _Sums()
    # Per human: agreement with other humans (leave-one-out) and with the judge, per prompt.
    loo_agree = np.zeros((len(rater_ids), n_prompts))
    loo_total = np.zeros((len(rater_ids), n_prompts))
    judge_vs: dict[int, tuple[list[int], list[int]]] = {r: ([], []) for r in rater_ids}
    consensus_pairs: tuple[list[int], list[int]] = ([], [])
    gold_pairs: tuple[list[int], list[int]] = ([], [])
    per_prompt = []
    for column, prompt in enumerate(judged):
        assert prompt.judge is not None
        judge_labels = pair_labels(prompt.judge, prompt.response_ids)
        human_labels = {r: pair_labels(g, prompt.response_ids) for r, g in prompt.humans.items()}
        agree_c = total_c = agree_h = total_h = 0
        for pair, label in judge_labels.items():
            votes = [labels[pair] for labels in human_labels.values() if pair in labels]
            consensus = majority(votes)
            if consensus is not None:
                consensus_pairs[0].append(label)
                consensus_pairs[1].append(consensus)
                agree_c += label == consensus
                total_c += 1
            for rater, labels in human_labels.items():
                if pair in labels:
                    judge_vs[rater][0].append(label)
                    judge_vs[rater][1].append(labels[pair])
                    agree_h += label == labels[pair]
                    total_h += 1
        for rater, labels in human_labels.items():
            for other, other_labels in human_labels.items():
                if other == rater:
                    continue
                for pair, label in labels.items():
                    if pair in other_labels:
                        loo_agree[index_of[rater], column] += label == other_labels[pair]
                        loo_total[index_of[rater], column] += 1
        if prompt.gold is not None:
            for pair, label in pair_labels(prompt.gold, prompt.response_ids).items():
                if pair in judge_labels:
                    gold_pairs[0].append(judge_labels[pair])
                    gold_pairs[1].append(label)
        consensus_sums.add(agree_c, total_c)
        humans_sums.add(agree_h, total_h)
        if total_h:
            per_prompt.append(
                {
                    "prompt_id": prompt.prompt_id,
                    "agreement_with_humans": agree_h / total_h,
                    "compared": total_h,
                    "judge": prompt.judge,
                    "humans": [prompt.humans[r] for r in sorted(prompt.humans)],
                }
            )
    human_loo = [
        _ratio(float(loo_agree[i].sum()), float(loo_total[i].sum())) for i in range(len(rater_ids))
    ]
    defined_loo = [value for value in human_loo if value is not None]
    median_loo = float(np.median(defined_loo)) if defined_loo else None
    judge_vs_humans = _ratio(sum(humans_sums.agree), sum(humans_sums.total))
    intervals = _bootstrap(consensus_sums, humans_sums, loo_agree, loo_total, resamples, seed)
    per_prompt.sort(key=lambda row: (row["agreement_with_humans"], row["prompt_id"]))
    return {
        "prompts_judged": n_prompts,
        "humans": len(rater_ids),
        "consensus": _agreement(*consensus_pairs) | {"interval": intervals["consensus"]},
        "humans_pooled": {
            "agreement": judge_vs_humans,
            "compared": int(sum(humans_sums.total)),
            "interval": intervals["humans"],
        },
        "human_leave_one_out": {
            "median": median_loo,
            "interval": intervals["median_loo"],
            "raters": [
                {"rater_id": rater, "agreement": human_loo[index_of[rater]],
                 "compared": int(loo_total[index_of[rater]].sum())}
                for rater in rater_ids
            ],
        },
        "judge_minus_median_human": (
            judge_vs_humans - median_loo
            if judge_vs_humans is not None and median_loo is not None
            else None
        ),
        "difference_interval": intervals["difference"],
        "better_than_median_rater": (
            judge_vs_humans > median_loo
            if judge_vs_humans is not None and median_loo is not None
            else None
        ),
        "per_rater": [
            {"rater_id": rater, **_agreement(*judge_vs[rater])} for rater in rater_ids
        ],
        "gold": _agreement(*gold_pairs),
        "most_disagreeing": per_prompt[:worst],
    }  # fmt: skip


def _agreement(first: list[int], second: list[int]) -> dict[str, Any]:
    n = len(first)
    agree = sum(x == y for x, y in zip(first, second, strict=True))
    low, high = wilson_bounds(np.array([float(agree)]), np.array([float(n)]))
    return {
        "agreement": agree / n if n else None,
        "kappa": kappa(first, second),
        "compared": n,
        "wilson": [float(low[0]), float(high[0])] if n else None,
    }


def _bootstrap(
    consensus: _Sums,
    humans: _Sums,
    loo_agree: np.ndarray,
    loo_total: np.ndarray,
    resamples: int,
    seed: int,
) -> dict[str, list[float] | None]:
    """95% percentile intervals over prompts resampled with replacement."""
    n = len(consensus.total)
    if n == 0 or resamples <= 0:
        return dict.fromkeys(("consensus", "humans", "median_loo", "difference"))
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = (weights @ np.array(consensus.agree)) / (weights @ np.array(consensus.total))
        h = (weights @ np.array(humans.agree)) / (weights @ np.array(humans.total))
        per_rater = (weights @ loo_agree.T) / (weights @ loo_total.T)  # draws by raters
    if per_rater.shape[1]:
        finite = np.where(np.isfinite(per_rater), per_rater, np.nan)
        all_nan = np.all(np.isnan(finite), axis=1)
        median = np.full(resamples, np.nan)
        median[~all_nan] = np.nanmedian(finite[~all_nan], axis=1)
    else:
        median = np.full(resamples, np.nan)
    return {
        "consensus": percentile_interval(c, 0.95),
        "humans": percentile_interval(h, 0.95),
        "median_loo": percentile_interval(median, 0.95),
        "difference": percentile_interval(h - median, 0.95),
    }
