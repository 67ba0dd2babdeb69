"""The project's agreement in one summary: pairwise agreement (with and without ties),
Fleiss' kappa on pair labels, Krippendorff's alpha on mid-ranks and mean Kendall's W, each
with the units and rater pairs behind it and a bootstrap interval over prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rankings.stats.bootstrap import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    CONFIDENCE,
    PromptTypes,
    bootstrap_draws,
    merge_prompt_types,
    percentile_interval,
    prompt_types,
    statistics_from_sums,
)
from rankings.stats.tables import (
    BoolArray,
    IntArray,
    RankingTable,
    float_or_none,
    one_ranking_per_rater,
    pairs_of,
    without_tie_column,
)
from rankings.stats.units import PromptUnits, prompt_units

#: The project-level statistics ``project_agreement`` reports, in display order.
PROJECT_STATISTICS = (
    "pairwise_agreement",
    "pairwise_agreement_no_ties",
    "kappa",
    "alpha_ordinal",
    "alpha_interval",
    "kendall_w",
)


@dataclass(frozen=True)
class ProjectSums:
    """What the project statistics are computed from, summed over a set of prompts.

    Sums over disjoint sets of prompts (``merge_project_sums``) give the sums of their
    union, so a project is summed part by part; ``project_summary`` turns them into the
    numbers. ``evidence`` holds (units, rater pairs) per statistic; ``raters_seen`` marks
    the raters with at least one counted ranking.
    """

    types: PromptTypes
    n_values: int
    evidence: IntArray  # (len(PROJECT_STATISTICS), 2)
    n_prompts: int
    n_rankings: int
    raters_seen: BoolArray


def project_sums(table: RankingTable) -> ProjectSums:
    """The sums of a table's prompts (one ranking per rater is kept)."""
    table = one_ranking_per_rater(table)
    units = prompt_units(table)
    raters_per_prompt = np.bincount(table.prompt_index, minlength=table.n_prompts)
    prompts = np.flatnonzero(raters_per_prompt >= 2)
    evidence = _evidence_counts(units, raters_per_prompt)
    seen = np.zeros(table.n_raters, dtype=bool)
    seen[table.rater_index] = True
    return ProjectSums(
        types=prompt_types(units, prompts),
        n_values=units.n_values,
        evidence=np.array([evidence[name] for name in PROJECT_STATISTICS], dtype=np.int64),
        n_prompts=int(prompts.size),
        n_rankings=table.n_rankings,
        raters_seen=seen,
    )


def merge_project_sums(parts: list[ProjectSums]) -> ProjectSums:
    """The sums of the union of disjoint sets of prompts (same raters, same ``k_max``)."""
    if len({part.n_values for part in parts}) != 1:
        raise ValueError("parts must share k_max (the same mid-rank values)")
    return ProjectSums(
        types=merge_prompt_types([part.types for part in parts]),
        n_values=parts[0].n_values,
        evidence=np.sum([part.evidence for part in parts], axis=0),
        n_prompts=sum(part.n_prompts for part in parts),
        n_rankings=sum(part.n_rankings for part in parts),
        raters_seen=np.logical_or.reduce([part.raters_seen for part in parts]),
    )


def project_agreement(
    table: RankingTable,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """All project-level agreement numbers in one flat JSON-serializable dict (None = undefined).

    Each statistic in ``PROJECT_STATISTICS`` comes with ``<name>_n_units`` and
    ``<name>_n_pairs`` (the units that entered it and the rater pairs compared within them)
    and ``<name>_ci``: a percentile bootstrap interval ``[low, high]`` over prompts
    (``resamples`` resamples of the prompts with two or more rankings, seeded, so the same
    data gives the same interval), None when undefined or ``resamples`` is 0.
    ``n_rankings`` counts rankings after keeping one per (prompt, rater); ``n_prompts`` counts
    prompts with at least two of them; ``n_raters`` the raters with at least one.

    The values come from the same per-prompt sums as the resamples; the tests hold them to
    single-statistic references computed independently (``tests/rankings/references.py``).
    """
    return project_summary(project_sums(table), resamples, seed, confidence)


def project_summary(
    sums: ProjectSums,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """``project_agreement`` from a project's sums."""
    values = statistics_from_sums(sums.types.totals[np.newaxis], sums.n_values)
    draws = (
        bootstrap_draws(sums.types, sums.n_values, resamples, seed)
        if resamples > 0 and sums.n_prompts
        else {}
    )
    summary: dict[str, Any] = {}
    for index, name in enumerate(PROJECT_STATISTICS):
        value = float_or_none(float(values[name][0]))
        summary[name] = value
        n_units, n_pairs = sums.evidence[index].tolist()
        summary[f"{name}_n_units"], summary[f"{name}_n_pairs"] = n_units, n_pairs
        summary[f"{name}_ci"] = (
            percentile_interval(draws[name], confidence)
            if name in draws and value is not None
            else None
        )
    summary["n_prompts"] = sums.n_prompts
    summary["n_rankings"] = sums.n_rankings
    summary["n_raters"] = int(sums.raters_seen.sum())
    return summary


def _evidence_counts(units: PromptUnits, raters_per_prompt: IntArray) -> dict[str, tuple[int, int]]:
    """(units used, rater pairs compared) for each statistic."""

    def units_and_pairs(raters: IntArray) -> tuple[int, int]:
        return int((raters >= 2).sum()), int(pairs_of(raters).sum())

    labels = units.label_counts.sum(axis=2)
    decided = without_tie_column(units.label_counts).sum(axis=2)
    coders = units.value_counts.sum(axis=2)
    defined_w = ~np.isnan(units.kendall_w)
    alpha = units_and_pairs(coders)
    return {
        "pairwise_agreement": units_and_pairs(labels),
        "pairwise_agreement_no_ties": units_and_pairs(decided),
        "kappa": units_and_pairs(labels),
        "alpha_ordinal": alpha,
        "alpha_interval": alpha,
        "kendall_w": (int(defined_w.sum()), int(pairs_of(raters_per_prompt[defined_w]).sum())),
    }
