"""The project's agreement in one summary: pairwise agreement (with and without ties),
Fleiss' kappa on pair labels, Krippendorff's alpha on mid-ranks and mean Kendall's W, each
with the units and rater pairs behind it and a bootstrap interval over prompts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rankings.stats.bootstrap import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    CONFIDENCE,
    bootstrap_draws,
    features_of,
    percentile_interval,
    statistics_from_sums,
)
from rankings.stats.tables import (
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
    table = one_ranking_per_rater(table)
    units = prompt_units(table)
    raters_per_prompt = np.bincount(table.prompt_index, minlength=table.n_prompts)
    prompts = np.flatnonzero(raters_per_prompt >= 2)
    prompt_features = features_of(units, prompts)
    values = statistics_from_sums(prompt_features.totals[np.newaxis], units.n_values)
    draws = (
        bootstrap_draws(prompt_features, units.n_values, resamples, seed)
        if resamples > 0 and prompts.size
        else {}
    )
    evidence = _evidence_counts(units, raters_per_prompt)
    summary: dict[str, Any] = {}
    for name in PROJECT_STATISTICS:
        value = float_or_none(float(values[name][0]))
        summary[name] = value
        summary[f"{name}_n_units"], summary[f"{name}_n_pairs"] = evidence[name]
        summary[f"{name}_ci"] = (
            percentile_interval(draws[name], confidence)
            if name in draws and value is not None
            else None
        )
    summary["n_prompts"] = int(prompts.size)
    summary["n_rankings"] = table.n_rankings
    summary["n_raters"] = int(np.unique(table.rater_index).size)
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
