"""The numbers of an agreement run from its arrays; no database access.

Repeats are left out of agreement and consensus (they only measure self-consistency); gold
prompts count like any other. Consensus weighs each rater by reliability: their
leave-one-out agreement rescaled so chance level is 0 (``stats.consensus.reliability_weights``).
A run computes in three steps so the database stores prompt rows meanwhile:
``prompt_maths``, the consensus block by block, then ``finish_maths``.

The statistics modules are called through their module, so a test can stand in for one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rankings.runs.data import AgreementData
from rankings.stats import agreement as agreement_stats
from rankings.stats import consensus as consensus_stats
from rankings.stats import project as project_stats
from rankings.stats import raters as rater_stats
from rankings.stats import tables
from rankings.stats.agreement import PromptAgreementArrays, RaterAgreement
from rankings.stats.consensus import PromptConsensus
from rankings.stats.raters import RaterQuality
from rankings.stats.registry import RaterResult
from rankings.stats.tables import FloatArray, RankingTable


@dataclass(frozen=True)
class PromptMaths:
    """What consensus and the prompt rows need (see ``prompt_maths``)."""

    table: RankingTable  # counted rankings, one per rater and prompt
    agreement: list[RaterAgreement]
    reliability: FloatArray
    prompts: PromptAgreementArrays


RaterMaths = tuple[dict[str, Any], list[RaterAgreement], list[RaterQuality]]


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

    def rater_results(self) -> list[RaterResult]:
        """Per rater index, what ``rankings.stats.registry`` reads its statistics from."""
        return [
            RaterResult(
                agreement=together,
                agreement_no_ties=without_ties,
                quality=behaviour,
                reliability=float(weight),
            )
            for together, without_ties, behaviour, weight in zip(
                self.agreement,
                self.agreement_no_ties,
                self.quality,
                self.reliability.tolist(),
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
    """Leave-one-out agreement, reliability weights and each prompt's agreement."""
    # One ranking per rater and prompt, once: the statistics share its pair labels.
    table = tables.one_ranking_per_rater(data.agreement_table())
    together = agreement_stats.rater_leave_one_out_agreement(table)
    reliability = consensus_stats.reliability_weights(
        [np.nan if row.agreement is None else row.agreement for row in together],
        agreement_stats.chance_agreement(table),
    )
    return PromptMaths(
        table=table,
        agreement=together,
        reliability=reliability,
        prompts=agreement_stats.prompt_pairwise_agreement(table),
    )


def rater_maths(data: AgreementData, part: PromptMaths) -> RaterMaths:
    """Project metrics, agreement without ties and the raters' behaviour."""
    return (
        project_stats.project_agreement(part.table),
        agreement_stats.rater_leave_one_out_agreement(part.table, include_ties=False),
        rater_stats.rater_quality(data.table, data.context),
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
    summary, agreement_no_ties, behaviour = rater_part
    return AgreementMaths(
        summary=summary,
        agreement=part.agreement,
        agreement_no_ties=agreement_no_ties,
        quality=behaviour,
        reliability=part.reliability,
        prompts=part.prompts,
        consensus=result,
    )
