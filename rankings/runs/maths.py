"""The numbers of an agreement run from all of its arrays at once; no database access.

A run computes part by part (``streamed``); this is the same maths with every ranking in
memory, kept as the reference the tests hold the streamed run to, and for callers that
already hold a project's arrays.

Repeats are left out of agreement and consensus (they only measure self-consistency); gold
prompts count like any other. Consensus weighs each rater by reliability: their competence
in the reliability model (``stats.reliability``), or, for a rater it has no labels of,
their leave-one-out agreement rescaled so chance level is 0 (``stats.consensus``).
It computes in three steps: ``prompt_maths``, the consensus, then ``finish_maths``.

The statistics modules are called through their module, so a test can stand in for one.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from rankings.runs.data import AgreementData
from rankings.stats import agreement as agreement_stats
from rankings.stats import consensus as consensus_stats
from rankings.stats import project as project_stats
from rankings.stats import raters as rater_stats
from rankings.stats import reliability as reliability_stats
from rankings.stats import sequential as sequential_stats
from rankings.stats import tables
from rankings.stats.agreement import PromptAgreementArrays, RaterAgreement
from rankings.stats.consensus import PromptConsensus
from rankings.stats.raters import RaterQuality
from rankings.stats.registry import RaterResult
from rankings.stats.reliability import PairLabels, ReliabilityFit
from rankings.stats.sequential import RaterReliability
from rankings.stats.tables import FloatArray, RankingTable


@dataclass(frozen=True)
class PromptMaths:
    """What consensus and the prompt rows need (see ``prompt_maths``)."""

    table: RankingTable  # counted rankings, one per rater and prompt
    agreement: list[RaterAgreement]
    reliability: FloatArray
    prompts: PromptAgreementArrays
    labels: PairLabels
    fit: ReliabilityFit


RaterMaths = tuple[dict[str, Any], list[RaterAgreement], list[RaterQuality], list[RaterReliability]]


@dataclass(frozen=True)
class AgreementMaths:
    """Everything an agreement run computes, before it is stored (see ``agreement_maths``)."""

    summary: dict[str, Any]
    agreement: list[RaterAgreement]
    agreement_no_ties: list[RaterAgreement]
    quality: list[RaterQuality]
    reliability: FloatArray
    prompts: PromptAgreementArrays
    consensus: PromptConsensus
    model: list[RaterReliability]

    def rater_results(self) -> list[RaterResult]:
        """Per rater index, what ``rankings.stats.registry`` reads its statistics from."""
        return [
            RaterResult(
                agreement=together,
                agreement_no_ties=without_ties,
                quality=behaviour,
                reliability=float(weight),
                model=model,
            )
            for together, without_ties, behaviour, weight, model in zip(
                self.agreement,
                self.agreement_no_ties,
                self.quality,
                self.reliability.tolist(),
                self.model,
                strict=True,
            )
        ]


def agreement_maths(data: AgreementData) -> AgreementMaths:
    """All of a run's numbers in one call (the run itself interleaves them with storing)."""
    part = prompt_maths(data)
    result = consensus_stats.prompt_consensus(
        part.table, part.reliability, consensus_stats.BRADLEY_TERRY
    )
    return finish_maths(data, part, result)


def prompt_maths(data: AgreementData) -> PromptMaths:
    """Leave-one-out agreement, the reliability model, the consensus weights and each
    prompt's agreement."""
    # The model's fit runs beside the agreement statistics (numpy and scipy's sparse
    # products release the GIL), and the consensus weights wait for both.
    with ThreadPoolExecutor(max_workers=1) as pool:
        fitting = pool.submit(_reliability_fit, data)
        # One ranking per rater and prompt, once: the statistics share its pair labels.
        table = tables.one_ranking_per_rater(data.agreement_table())
        together = agreement_stats.rater_leave_one_out_agreement(table)
        prompts = agreement_stats.prompt_pairwise_agreement(table)
        labels, fit = fitting.result()
    by_agreement = consensus_stats.reliability_weights(
        [np.nan if row.agreement is None else row.agreement for row in together],
        agreement_stats.chance_agreement(table),
    )
    fitted = labels.per_rater() > 0
    reliability = consensus_stats.competence_weights(
        np.where(fitted, fit.competence, np.nan), fallback=by_agreement
    )
    return PromptMaths(
        table=table,
        agreement=together,
        reliability=reliability,
        prompts=prompts,
        labels=labels,
        fit=fit,
    )


def _reliability_fit(data: AgreementData) -> tuple[PairLabels, ReliabilityFit]:
    labels = reliability_stats.pair_labels(data.table, data.context)
    return labels, reliability_stats.fit_reliability(labels)


def rater_maths(data: AgreementData, part: PromptMaths) -> RaterMaths:
    """Project metrics, agreement without ties, the raters' behaviour and reliability."""
    return (
        project_stats.project_agreement(part.table),
        agreement_stats.rater_leave_one_out_agreement(part.table, include_ties=False),
        rater_stats.rater_quality(data.table, data.context),
        sequential_stats.rater_reliability(part.labels, part.fit),
    )


def finish_maths(
    data: AgreementData,
    part: PromptMaths,
    result: PromptConsensus,
    rater_part: RaterMaths | None = None,
) -> AgreementMaths:
    """Project metrics and the raters' statistics (``rater_maths``, computed here unless
    given), joined with the prompt part."""
    if rater_part is None:
        rater_part = rater_maths(data, part)
    summary, agreement_no_ties, behaviour, model = rater_part
    return AgreementMaths(
        summary=summary,
        agreement=part.agreement,
        agreement_no_ties=agreement_no_ties,
        quality=behaviour,
        reliability=part.reliability,
        prompts=part.prompts,
        consensus=result,
        model=model,
    )
