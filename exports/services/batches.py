"""The one row generator behind export jobs and streams: prompts in batches with their
pairs, pair filters, split and (where a format asks for them) response scores.

The same parameters over the same data give the same batches, so a job's file and a
stream's bytes are the same.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from typing import Any

from core.db import read_connection
from exports import pairs, selectors
from exports.card import CardTally
from exports.formats import format_spec, split_for_prompt
from exports.models import ExportJob, PairStrategy
from exports.pairs import Pair, PromptData, RankingData
from exports.params import STORED_PARAMS, KeepPair, pair_filters
from exports.services.prompt_ids import PromptIdSet, earlier_prompt_ids
from labeling.models import Project, Prompt
from rankings.stats.consensus import consensus_ranking

PromptPairs = tuple[PromptData, list[Pair], str]


@dataclass(frozen=True)
class ExportRequest:
    """What to export: everything a job's rows depend on."""

    project: Project
    format: str
    strategy: str
    container: str
    params: dict[str, Any]
    skip_prompt_ids: PromptIdSet

    @classmethod
    def for_job(cls, job: ExportJob) -> ExportRequest:
        # A job recorded before a parameter existed ran with its default.
        defaults = {param.name: param.default for param in STORED_PARAMS}
        return cls(
            project=job.project,
            format=job.format,
            strategy=job.strategy,
            container=job.container,
            params=defaults | job.params,
            skip_prompt_ids=earlier_prompt_ids(job.params.get("since_export")),
        )

    def shape(self) -> dict[str, bool]:
        """The SHAPE parameters the files are written with (`formats.ExportFiles`)."""
        return {
            "with_metadata": self.params["with_metadata"],
            "soft_labels": self.params["soft_labels"],
            "source_column": self.params.get("source", pairs.HUMAN) != pairs.HUMAN,
        }

    def pinned(self, until_ranking_id: int) -> ExportRequest:
        return replace(self, params={**self.params, "until_ranking_id": until_ranking_id})

    def filters(self) -> selectors.ExportFilters:
        return selectors.export_filters(
            project=self.project, params=self.params, skip_prompt_ids=self.skip_prompt_ids
        )


@dataclass
class BatchTimer:
    """Seconds spent per phase, summed over batches."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, started: float) -> float:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - started
        return now

    def rounded(self) -> dict[str, float]:
        return {phase: round(seconds, 3) for phase, seconds in self.seconds.items()}


def export_batches(
    request: ExportRequest,
    *,
    timer: BatchTimer | None = None,
    prefetch: bool = False,
    tally: CardTally | None = None,
) -> Generator[list[PromptPairs]]:
    """Each batch's prompts with their pairs and split, prompt by prompt in id order.

    Deterministic: prompts in id order, pairs in the order `exports.pairs` defines, the
    split a seeded hash of the prompt id. Prompts left without pairs are dropped.

    With `prefetch` the next batch is read on a background thread (with its own database
    connection) while this one is paired; inside a transaction it is read inline, since
    another connection would not see the transaction's rows. A `tally` counts the rankings
    and raters behind the rows.
    """
    timer = timer or BatchTimer()
    params = request.params
    include_ties = params["include_ties"]
    keeps = pair_filters(params)
    seed, test_fraction = params["seed"], params["test_fraction"]
    needs_scores = format_spec(request.format).needs_scores
    batches = selectors.sourced_prompt_batches(
        project=request.project,
        filters=request.filters(),
        source=params.get("source", pairs.HUMAN),
        judge_endpoint=params.get("judge_endpoint"),
        prefetch=prefetch and not read_connection(Prompt).in_atomic_block,
    )
    started = time.perf_counter()
    for batch in batches:
        started = timer.add("read", started)
        output: list[PromptPairs] = []
        for prompt, rankings, judge in batch:
            if judge is not None and not rankings:
                output += _judge_rows(request, prompt, judge, keeps)
                continue
            if request.strategy == PairStrategy.CONSENSUS:
                prompt_pairs = _consensus_pairs(prompt, rankings, include_ties)
            else:
                prompt_pairs = pairs.build_pairs(
                    prompt, rankings, request.strategy, include_ties=include_ties
                )
            for keep in keeps:
                prompt_pairs = [pair for pair in prompt_pairs if keep(pair)]
            if prompt_pairs:
                if needs_scores:
                    prompt = replace(prompt, scores=pairs.response_scores(prompt, rankings))
                split = split_for_prompt(prompt.prompt_id, seed, test_fraction)
                output.append((prompt, prompt_pairs, split))
                if tally is not None:
                    tally.add(rankings)
            if judge is not None:
                # The judge's rows follow the human rows of the same prompt.
                output += _judge_rows(request, prompt, judge, keeps)
        started = timer.add("pairs", started)
        yield output
        started = time.perf_counter()


def _judge_rows(
    request: ExportRequest,
    prompt: PromptData,
    judge: selectors.JudgeData,
    keeps: list[KeepPair],
) -> list[PromptPairs]:
    """The AI judge's pairs of one prompt (`source` ai or both), filtered like human pairs;
    UltraFeedback scores come from the judge's own orders, never from the humans'."""
    params = request.params
    prompt_pairs = pairs.build_judge_pairs(
        prompt, judge.verdict, judge.orders, request.strategy, include_ties=params["include_ties"]
    )
    for keep in keeps:
        prompt_pairs = [pair for pair in prompt_pairs if keep(pair)]
    if not prompt_pairs:
        return []
    if format_spec(request.format).needs_scores:
        prompt = replace(prompt, scores=pairs.response_scores(prompt, judge.orders))
    split = split_for_prompt(prompt.prompt_id, params["seed"], params["test_fraction"])
    return [(prompt, prompt_pairs, split)]


def _consensus_pairs(
    prompt: PromptData, rankings: list[RankingData], include_ties: bool
) -> list[Pair]:
    ordered = sorted(rankings, key=lambda ranking: ranking.ranking_id)
    result = consensus_ranking([ranking.groups for ranking in ordered])
    scores = {int(response_id): float(score) for response_id, score in result.scores.items()}
    groups = [[int(response_id) for response_id in group] for group in result.groups]
    return pairs.build_consensus_pairs(prompt, ordered, groups, scores, include_ties=include_ties)


def rows_estimate(request: ExportRequest) -> int:
    """Rows the export will have at most, from counts (ties and filters only lower it)."""
    size = selectors.export_size(project=request.project, filters=request.filters())
    k = max(round(size.responses_per_prompt), 2)
    per_ranking = {
        PairStrategy.ALL_PAIRS: k * (k - 1) // 2,
        PairStrategy.BEST_VS_REST: k - 1,
        PairStrategy.BEST_VS_WORST: 1,
    }
    if request.strategy == PairStrategy.CONSENSUS:
        pair_count = size.prompts * k * (k - 1) // 2
    else:
        pair_count = size.rankings * per_ranking[PairStrategy(request.strategy)]
    source = request.params.get("source", pairs.HUMAN)
    if source != pairs.HUMAN:
        judged = selectors.judged_prompt_count(
            project=request.project,
            filters=request.filters(),
            endpoint_id=request.params["judge_endpoint"],
        )
        ai_pairs = judged * per_ranking.get(PairStrategy(request.strategy), k * (k - 1) // 2)
        pair_count = ai_pairs + (pair_count if source == "both" else 0)
    return pair_count * format_spec(request.format).rows_per_pair
