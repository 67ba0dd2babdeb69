"""Independent references the statistics and runs are held to; test-only code.

Each project statistic computed on its own (the production summary computes them all from
the same per-prompt sums), Davidson's objective written out plainly, Borda as a named
baseline, and small readers the tests use. The statistics tests check these against the
krippendorff package, scipy and brute force, and production against these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from labeling.models import Project
from rankings.runs import data as run_data
from rankings.runs import selectors as run_selectors
from rankings.runs import storage
from rankings.runs.maths import PromptMaths
from rankings.stats import agreement, consensus, davidson, groups, raters, tables, units
from rankings.stats.tables import N_LABEL_CATEGORIES, RankingTable


@dataclass(frozen=True)
class AgreementResult:
    """A project-level statistic with the evidence behind it (None when undefined)."""

    value: float | None
    n_units: int
    n_pairs: int


# Pair labels and pairwise agreement ------------------------------------------------------------


@dataclass(frozen=True)
class PairLabels:
    """Every ranking turned into one label per response pair (flat, one entry per label)."""

    prompt_index: npt.NDArray[np.int64]
    rater_index: npt.NDArray[np.int64]
    pair_slot: npt.NDArray[np.int64]
    label: npt.NDArray[np.int8]


def pair_labels(table: RankingTable) -> PairLabels:
    """One label per ranking and response pair whose two slots are both present."""
    labels, present = table.label_matrix()
    rows, pair_slot = np.nonzero(present)
    return PairLabels(
        prompt_index=table.prompt_index[rows],
        rater_index=table.rater_index[rows],
        pair_slot=pair_slot.astype(np.int64),
        label=labels[rows, pair_slot],
    )


def pairwise_agreement(table: RankingTable, include_ties: bool = True) -> AgreementResult:
    """Share of rater pairs that label a response pair the same way, pooled over units."""
    counts = tables.one_ranking_per_rater(table).unit_label_counts()
    if not include_ties:
        counts = tables.without_tie_column(counts)
    raters_per_unit = counts.sum(axis=-1)
    rater_pairs = int(tables.pairs_of(raters_per_unit).sum())
    agreeing_pairs = int(tables.pairs_of(counts).sum())
    return AgreementResult(
        value=agreeing_pairs / rater_pairs if rater_pairs else None,
        n_units=int((raters_per_unit >= 2).sum()),
        n_pairs=rater_pairs,
    )


def wilson_interval(successes: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """One Wilson score interval; (nan, nan) when n == 0."""
    low, high = agreement.wilson_bounds(np.array([successes], float), np.array([n], float), z)
    return float(low[0]), float(high[0])


# Krippendorff's alpha from its coincidence matrix -----------------------------------------------


def _alpha(table: RankingTable, level: str) -> AgreementResult:
    value_counts = units.unit_value_counts(tables.one_ranking_per_rater(table))
    n_values = value_counts.shape[-1]
    per_unit = value_counts.reshape(-1, n_values).astype(np.float64)
    coders = per_unit.sum(axis=1)
    pairable = coders >= 2
    weight = np.zeros_like(coders)
    weight[pairable] = 1.0 / (coders[pairable] - 1.0)
    weighted = per_unit * weight[:, np.newaxis]
    matrix = weighted.T @ per_unit - np.diag(weighted.sum(axis=0))
    value_totals = matrix.sum(axis=0)
    if level == "ordinal":
        distances = units.ordinal_distances(value_totals)
    else:
        distances = units.interval_distances(units.mid_rank_domain((n_values + 1) // 2))
    n_pairable = value_totals.sum()
    value = None
    if n_pairable > 1:
        observed = (matrix * distances).sum()
        expected = (np.outer(value_totals, value_totals) * distances).sum() / (n_pairable - 1)
        if expected > 0:
            value = float(1.0 - observed / expected)
    return AgreementResult(
        value=value,
        n_units=int(pairable.sum()),
        n_pairs=int(tables.pairs_of(coders[pairable].astype(np.int64)).sum()),
    )


def krippendorff_alpha_ordinal(table: RankingTable) -> AgreementResult:
    """Krippendorff's alpha, ordinal metric, on response mid-ranks (units = prompt x slot)."""
    return _alpha(table, "ordinal")


def krippendorff_alpha_interval(table: RankingTable) -> AgreementResult:
    """Krippendorff's alpha, interval metric, on response mid-ranks (units = prompt x slot)."""
    return _alpha(table, "interval")


# Fleiss' kappa and Kendall's W -----------------------------------------------------------------


def fleiss_kappa_from_counts(counts: npt.ArrayLike) -> float | None:
    """Fleiss' kappa from a (units, categories) table of rater counts; units may have
    different numbers of raters (per-unit agreement averaged over units with two or more)."""
    table = np.asarray(counts, dtype=np.float64)
    raters_per_unit = table.sum(axis=1)
    table, raters_per_unit = table[raters_per_unit >= 2], raters_per_unit[raters_per_unit >= 2]
    if len(table) == 0:
        return None
    unit_agreement = ((table**2).sum(axis=1) - raters_per_unit) / (
        raters_per_unit * (raters_per_unit - 1)
    )
    category_share = table.sum(axis=0) / raters_per_unit.sum()
    chance = float((category_share**2).sum())
    if chance >= 1.0:
        return None
    return (float(unit_agreement.mean()) - chance) / (1.0 - chance)


def fleiss_kappa_pairs(table: RankingTable) -> AgreementResult:
    """Fleiss' kappa on pair labels (first better / second better / tie).

    A pair has no natural orientation, so each unit enters twice: as labelled, and mirrored
    (first and second swapped). That leaves the observed agreement as it is and makes the
    chance level symmetric in the two "better" labels, whatever the import order.
    """
    counts = tables.one_ranking_per_rater(table).unit_label_counts()
    counts = counts.reshape(-1, N_LABEL_CATEGORIES)
    raters_per_unit = counts.sum(axis=1)
    used = raters_per_unit >= 2
    both_ways = np.concatenate([counts[used], counts[used][:, ::-1]])
    return AgreementResult(
        value=fleiss_kappa_from_counts(both_ways),
        n_units=int(used.sum()),
        n_pairs=int(tables.pairs_of(raters_per_unit[used]).sum()),
    )


def kendall_w_mean(table: RankingTable) -> AgreementResult:
    """Mean over prompts of Kendall's W (tie corrected) among the prompt's raters."""
    w, raters_per_prompt = units.kendall_w_per_prompt(tables.one_ranking_per_rater(table))
    defined = ~np.isnan(w)
    return AgreementResult(
        value=float(w[defined].mean()) if defined.any() else None,
        n_units=int(defined.sum()),
        n_pairs=int(tables.pairs_of(raters_per_prompt[defined]).sum()),
    )


# Raters and consensus --------------------------------------------------------------------------


def pooled_quality(table: RankingTable, context: tables.RankingContext) -> raters.RaterQuality:
    """The rater statistics pooled over all raters, as if the crowd were one rater."""
    owners = groups.Owners(np.zeros(table.n_rankings, dtype=np.int64), 1)
    return raters.quality_row(raters.quality_columns(table, context, owners), 0)


def borda_consensus(
    rankings: list[list[list[int]]], weights: list[float] | None = None
) -> consensus.ConsensusResult:
    """Borda count with mid-rank points for ties; the baseline consensus."""
    return consensus.consensus_ranking(rankings, weights, method=consensus.BORDA)


def davidson_objective(
    strength: npt.NDArray[np.float64], tie_log: npt.NDArray[np.float64], counts: Any
) -> npt.NDArray[np.float64]:
    """Davidson's penalized log-likelihood per prompt, written out pair by pair.

    ``strength`` is ``(P, K)``, ``tie_log`` ``(P,)``; ``counts`` a ``davidson.PairCounts``.
    """
    strength = np.asarray(strength, dtype=np.float64)
    tie_log = np.asarray(tie_log, dtype=np.float64)
    values = np.zeros(len(strength))
    for prompt in range(len(strength)):
        theta, eta = strength[prompt], float(tie_log[prompt])
        total = 0.0
        for pair, (i, j) in enumerate(tables.slot_pairs(counts.k_max)):
            first = theta[i]
            second = theta[j]
            tie = eta + (theta[i] + theta[j]) / 2.0
            log_z = np.logaddexp.reduce([first, second, tie])
            total += counts.first_wins[pair, prompt] * (first - log_z)
            total += counts.second_wins[pair, prompt] * (second - log_z)
            total += counts.ties[pair, prompt] * (tie - log_z)
        prior = davidson.STRENGTH_PRIOR / 2.0 * float((theta**2).sum())
        prior += davidson.TIE_PRIOR / 2.0 * eta**2
        values[prompt] = total - prior
    return values


# Runs -----------------------------------------------------------------------------------------


def ranking_table(
    *, project: Project, up_to_id: int | None = None
) -> tuple[RankingTable, list[int]]:
    """The rankings that count toward agreement, plus the user id behind each rater index."""
    data = run_data.agreement_data(project=project, up_to_id=up_to_id)
    return data.agreement_table(), data.rater_user_ids


def agreement_run_is_stale(*, project: Project) -> bool:
    """True when rankings arrived after every finished run and no live run will see them."""
    return run_selectors.projects_with_unseen_rankings().filter(pk=project.pk).exists()


def prompt_agreements_store(
    *, run_id: int, data: run_data.AgreementData, part: PromptMaths, portable: bool = False
) -> consensus.PromptConsensus:
    """Fit the consensus and store the prompt rows in one go; returns the consensus."""
    with storage.prompt_agreements_writing(
        run_id=run_id, data=data, part=part, portable=portable
    ) as result:
        return result
