"""A run's numbers block by block of prompts: each block gives sums, the sums of all blocks
give the run. No database access; ``parts`` reads the blocks and stores what they give.

A run's statistics either add up over prompts (pair counts, per-rater sums, per-prompt
statistics and their bootstrap types) or need a number from all of them first (the
reliability fit, the consensus weights it gives, the speed buckets' edges). So a run makes
two passes over its blocks:

1. ``first_pass``: the additive sums (``FirstSums``) and the block's labels for the
   reliability fit (``LabelBlock``); ``fit_blocks`` then fits the model over the labels of
   every block, one block in memory at a time, and ``run_state`` derives what pass two
   needs (a few numbers per rater).
2. ``second_pass``: each prompt's agreement and consensus (stored as the block's prompt
   rows), and the sums of the raters' reliability summaries and speed (``SecondSums``).

``finish`` turns the merged sums into the run's summary and rater results: the same
numbers ``maths.agreement_maths`` computes with every ranking in memory (the tests hold the
two to each other). What a run holds at once is a block, the bootstrap's prompt types and a
few arrays per rater, whatever the project's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rankings.runs.data import AgreementData
from rankings.stats import agreement as agreement_stats
from rankings.stats import consensus as consensus_stats
from rankings.stats import project as project_stats
from rankings.stats import raters as rater_stats
from rankings.stats import reliability as reliability_stats
from rankings.stats import sequential as sequential_stats
from rankings.stats import speed as speed_stats
from rankings.stats import tables
from rankings.stats.agreement import LeaveOneOutSums, PromptAgreementArrays
from rankings.stats.consensus import PromptConsensus
from rankings.stats.groups import Columns, Owners
from rankings.stats.label_blocks import LabelBlock
from rankings.stats.project import ProjectSums
from rankings.stats.registry import RaterResult
from rankings.stats.reliability import ReliabilityFit
from rankings.stats.sequential import ReliabilitySums
from rankings.stats.speed import ValueCounts
from rankings.stats.tables import FloatArray, IntArray, RankingContext, RankingTable


@dataclass(frozen=True)
class FirstSums:
    """Pass one's sums: they add up over blocks (``merge_first``)."""

    project: ProjectSums
    together: LeaveOneOutSums
    without_ties: LeaveOneOutSums
    chance: IntArray  # label totals behind the chance level (``agreement.chance_label_totals``)
    quality: Columns  # ``raters.quality_sums``
    lengths: ValueCounts  # the speed buckets' lengths (``speed.speed_lengths``)
    labels_per_rater: IntArray  # decided labels each rater gave the fit


@dataclass(frozen=True)
class RunState:
    """What pass two needs from pass one: the fit, each rater's consensus weight, the
    typical competence and the speed buckets' edges."""

    fit: ReliabilityFit
    consensus_weights: FloatArray
    typical: float | None
    speed_edges: FloatArray | None


@dataclass(frozen=True)
class SecondSums:
    reliability: ReliabilitySums
    speed: ValueCounts  # ``speed.speed_counts``
    n_prompts: int  # prompt rows


@dataclass(frozen=True)
class PromptResults:
    """A block's prompt rows: each prompt's agreement and consensus."""

    prompts: PromptAgreementArrays
    consensus: PromptConsensus


@dataclass(frozen=True)
class RunResult:
    summary: dict[str, Any]
    raters: list[RaterResult]


def counted_table(block: AgreementData) -> RankingTable:
    """The rankings agreement counts: repeats out, one per rater and prompt."""
    return tables.one_ranking_per_rater(block.agreement_table())


def first_pass(block: AgreementData) -> tuple[FirstSums, LabelBlock]:
    table = counted_table(block)
    labels = reliability_stats.pair_labels(block.table, block.context)
    owners = Owners(block.table.rater_index, block.table.n_raters)
    together, without_ties = agreement_stats.leave_one_out_sums_both(table)
    sums = FirstSums(
        project=project_stats.project_sums(table),
        together=together,
        without_ties=without_ties,
        chance=agreement_stats.chance_label_totals(table),
        quality=rater_stats.quality_sums(block.table, block.context, owners),
        lengths=speed_stats.speed_lengths(block.table, block.context),
        labels_per_rater=labels.per_rater(),
    )
    return sums, reliability_stats.label_block(labels)


def merge_first(parts: list[FirstSums]) -> FirstSums:
    return FirstSums(
        project=project_stats.merge_project_sums([part.project for part in parts]),
        together=_merged([part.together for part in parts]),
        without_ties=_merged([part.without_ties for part in parts]),
        chance=np.sum([part.chance for part in parts], axis=0),
        quality=rater_stats.merge_sums([part.quality for part in parts]),
        lengths=_merged_counts([part.lengths for part in parts]),
        labels_per_rater=np.sum([part.labels_per_rater for part in parts], axis=0),
    )


def _merged(parts: list[LeaveOneOutSums]) -> LeaveOneOutSums:
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    return merged


def _merged_counts(parts: list[ValueCounts]) -> ValueCounts:
    return speed_stats.value_counts(
        np.concatenate([part.values for part in parts]),
        np.concatenate([part.counts for part in parts]),
    )


def fit_blocks(blocks: Sequence[LabelBlock], n_raters: int) -> ReliabilityFit:
    """The reliability fit over every block's labels (a pass over them per iteration)."""
    return reliability_stats.fit_reliability_blocks(blocks, n_raters)


def run_state(first: FirstSums, fit: ReliabilityFit) -> RunState:
    """The consensus weights as ``maths.prompt_maths`` sets them: competence where the model
    has labels of the rater, else leave-one-out agreement rescaled from chance."""
    together = agreement_stats.rater_agreement_from_sums(first.together)
    by_agreement = consensus_stats.reliability_weights(
        [np.nan if row.agreement is None else row.agreement for row in together],
        agreement_stats.chance_from_label_totals(first.chance),
    )
    fitted = first.labels_per_rater > 0
    weights = consensus_stats.competence_weights(
        np.where(fitted, fit.competence, np.nan), fallback=by_agreement
    )
    return RunState(
        fit=fit,
        consensus_weights=weights,
        typical=sequential_stats.typical_competence(fit.competence, first.labels_per_rater),
        speed_edges=speed_stats.speed_bucket_edges(first.lengths),
    )


def second_pass(block: AgreementData, state: RunState) -> tuple[SecondSums, PromptResults]:
    table = counted_table(block)
    labels = reliability_stats.pair_labels(block.table, block.context)
    block_fit = reliability_stats.fit_for_block(state.fit, labels)
    owners = Owners(block.table.rater_index, block.table.n_raters)
    sums = SecondSums(
        reliability=sequential_stats.reliability_sums(labels, block_fit, state.typical),
        speed=speed_stats.speed_counts(block.table, block.context, state.speed_edges, owners),
        n_prompts=len(block.prompt_ids),
    )
    rows = PromptResults(
        prompts=agreement_stats.prompt_pairwise_agreement(table),
        consensus=consensus_stats.prompt_consensus(table, state.consensus_weights),
    )
    return sums, rows


def merge_second(parts: list[SecondSums]) -> SecondSums:
    reliability = parts[0].reliability
    for part in parts[1:]:
        reliability = reliability.merge(part.reliability)
    return SecondSums(
        reliability=reliability,
        speed=_merged_counts([part.speed for part in parts]),
        n_prompts=sum(part.n_prompts for part in parts),
    )


def finish(first: FirstSums, second: SecondSums, state: RunState) -> RunResult:
    """The run's project summary and a result per rater from the merged sums."""
    n_raters = len(first.labels_per_rater)
    speed = speed_stats.speed_from_counts(second.speed, n_raters)
    columns = rater_stats.quality_from_sums(first.quality, speed)
    model = sequential_stats.reliability_rows(state.fit, second.reliability, state.typical)
    results = [
        RaterResult(
            agreement=together,
            agreement_no_ties=without_ties,
            quality=rater_stats.quality_row(columns, rater),
            reliability=float(state.consensus_weights[rater]),
            model=model[rater],
        )
        for rater, (together, without_ties) in enumerate(
            zip(
                agreement_stats.rater_agreement_from_sums(first.together),
                agreement_stats.rater_agreement_from_sums(first.without_ties),
                strict=True,
            )
        )
    ]
    return RunResult(summary=project_stats.project_summary(first.project), raters=results)


def streamed_maths(blocks: list[AgreementData]) -> tuple[RunResult, list[PromptResults]]:
    """Both passes over blocks held in memory (the tests' and the bench's way in)."""
    firsts, labels = zip(*(first_pass(block) for block in blocks), strict=True)
    first = merge_first(list(firsts))
    state = run_state(first, fit_blocks(labels, len(first.labels_per_rater)))
    seconds, rows = zip(*(second_pass(block, state) for block in blocks), strict=True)
    return finish(first, merge_second(list(seconds)), state), list(rows)


# Blocks ----------------------------------------------------------------------------------------


def data_block(data: AgreementData, start: int, stop: int) -> AgreementData:
    """Prompts ``start`` to ``stop`` of the data as a block of their own (prompts renumbered
    from 0; raters and slots as they are)."""
    rows = np.flatnonzero((data.table.prompt_index >= start) & (data.table.prompt_index < stop))
    table = RankingTable(
        prompt_index=data.table.prompt_index[rows] - start,
        rater_index=data.table.rater_index[rows],
        ranks=data.table.ranks[rows],
        n_prompts=stop - start,
        n_raters=data.table.n_raters,
    )
    context = data.context.take(rows)
    context = replace(
        context,
        gold_ranks=None if context.gold_ranks is None else context.gold_ranks[start:stop],
        response_length=(
            None if context.response_length is None else context.response_length[start:stop]
        ),
    )
    return AgreementData(
        table=table,
        context=context,
        rater_user_ids=data.rater_user_ids,
        prompt_ids=data.prompt_ids[start:stop],
        response_ids=data.response_ids[start:stop],
        ranking_ids=data.ranking_ids[rows],
    )


def in_scope(data: AgreementData, rater_user_ids: IntArray, k_max: int) -> AgreementData:
    """A block read on its own, indexed like the whole project: raters by their place among
    ``rater_user_ids`` (sorted), slots padded to ``k_max``."""
    own = np.asarray(data.rater_user_ids, dtype=np.int64)
    place = np.searchsorted(rater_user_ids, own)
    if own.size and not np.array_equal(
        rater_user_ids[np.minimum(place, len(rater_user_ids) - 1)], own
    ):
        raise ValueError("a block has raters the run does not know of")
    table = data.table
    pad = k_max - table.k_max
    if pad < 0:
        raise ValueError("a block has more response slots than the run")

    def padded(values: FloatArray) -> FloatArray:
        return np.pad(values, ((0, 0), (0, pad)), constant_values=np.nan)

    def padded_or_none(values: FloatArray | None) -> FloatArray | None:
        return None if values is None else padded(values)

    context = data.context
    shown = context.shown_slots
    if shown is not None and shown.shape[1] < k_max:
        shown = np.pad(shown, ((0, 0), (0, k_max - shown.shape[1])), constant_values=-1)
    return AgreementData(
        table=RankingTable(
            prompt_index=table.prompt_index,
            rater_index=place[table.rater_index] if own.size else table.rater_index,
            ranks=padded(table.ranks),
            n_prompts=table.n_prompts,
            n_raters=len(rater_user_ids),
        ),
        context=RankingContext(
            is_repeat=context.is_repeat,
            shown_slots=shown,
            seconds=context.seconds,
            gold_ranks=padded_or_none(context.gold_ranks),
            response_length=padded_or_none(context.response_length),
        ),
        rater_user_ids=[int(user_id) for user_id in rater_user_ids],
        prompt_ids=data.prompt_ids,
        response_ids=np.pad(data.response_ids, ((0, 0), (0, pad))),
        ranking_ids=data.ranking_ids,
    )
