"""Storing a run: a row per prompt (consensus and agreement) and a score row per rater.

Prompt rows are COPYed on PostgreSQL while the consensus of the next block is fitted, and
inserted in batches elsewhere (the tests hold the two paths to each other). Score rows take
one column per statistic of ``rankings.stats.registry``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any, cast

import numpy as np
from django.db import connection
from django.db.models import Field
from psycopg.copy import QueuedLibpqWriter

from core import db
from core.jobs import JobStatus
from rankings.models import AgreementRun, PromptAgreement, RaterScore
from rankings.runs import copy_text
from rankings.runs.data import AgreementData
from rankings.runs.maths import AgreementMaths, PromptMaths
from rankings.stats import consensus as consensus_stats
from rankings.stats.agreement import PromptAgreementArrays
from rankings.stats.consensus import PromptConsensus
from rankings.stats.registry import RATER_STATISTICS, RaterResult
from rankings.stats.tables import BoolArray, FloatArray, IntArray

# Rows per INSERT when bulk_create stores score and prompt rows (COPY on PostgreSQL).
BATCH_SIZE = 2000
# Prompt rows' scores (fitted log-strengths) are stored rounded to this many decimals.
SCORE_DECIMALS = 4
SCORE_SCALE = 10**SCORE_DECIMALS


def rater_score_rows(
    *, run_id: int, data: AgreementData, maths: AgreementMaths
) -> list[RaterScore]:
    """A score row per rater: every registry statistic in its column."""
    return rater_score_rows_of(
        run_id=run_id, rater_user_ids=data.rater_user_ids, results=maths.rater_results()
    )


def rater_score_rows_of(
    *, run_id: int, rater_user_ids: list[int], results: list[RaterResult]
) -> list[RaterScore]:
    """A score row per rater from results in the order of ``rater_user_ids``."""
    return [
        RaterScore(
            run_id=run_id,
            rater_id=user_id,
            **{stat.column: stat.value_of(result) for stat in RATER_STATISTICS},
        )
        for user_id, result in zip(rater_user_ids, results, strict=True)
    ]


def prompt_rows_store(
    *,
    run_id: int,
    data: AgreementData,
    prompts: PromptAgreementArrays,
    result: PromptConsensus,
    portable: bool = False,
) -> int:
    """Store the prompt rows of a block whose consensus is fitted; how many.

    COPY on PostgreSQL; batched INSERTs elsewhere, or with ``portable``.
    """
    n_prompts = len(data.prompt_ids)
    if db.is_postgresql() and not portable:
        fields = [PromptAgreement._meta.get_field(name) for name in _PROMPT_AGREEMENT_FIELDS]
        columns = ", ".join(
            connection.ops.quote_name(str(cast("Field[Any, Any]", field).column))
            for field in fields
        )
        table = connection.ops.quote_name(PromptAgreement._meta.db_table)
        text = _prompt_agreement_copy_text(
            run_id=run_id, data=data, prompts=prompts, result=result, start=0, stop=n_prompts
        )
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            copy.write(text)
        return n_prompts
    rows = prompt_agreement_rows(run_id=run_id, data=data, prompts=prompts, result=result)
    attributes = [f"{name}_id" if name in ("run", "prompt") else name
                  for name in _PROMPT_AGREEMENT_FIELDS]  # fmt: skip
    while batch := list(islice(rows, BATCH_SIZE)):
        PromptAgreement.objects.bulk_create(
            PromptAgreement(**dict(zip(attributes, row, strict=True))) for row in batch
        )
    return n_prompts


PROMPT_ROW_RUNS_KEPT = 2


def prompt_agreements_prune(*, project_id: int, keep: int = PROMPT_ROW_RUNS_KEPT) -> int:
    """Drop per-prompt rows of all but the newest finished runs.

    A run stores a row per prompt (hundreds of thousands on a large project); the pages
    read only the newest run's rows, while project metrics and rater scores keep the
    history.
    """
    kept = list(
        AgreementRun.objects.filter(project_id=project_id, status=JobStatus.DONE)
        .order_by("-id")
        .values_list("id", flat=True)[:keep]
    )
    if len(kept) < keep:
        return 0
    # By run ids, not through a join to the runs: Django deletes through a join as
    # ``id IN (subquery)``, which took 150 s for the 3.26M rows of a 10M-ranking run where
    # the plain ``run_id IN (...)`` takes 8 s.
    older = AgreementRun.objects.filter(project_id=project_id, id__lt=min(kept)).order_by()
    older_ids = list(older.values_list("id", flat=True))
    deleted, _ = PromptAgreement.objects.filter(run_id__in=older_ids).delete()
    return deleted


def prompt_agreement_rows(
    *, run_id: int, data: AgreementData, prompts: PromptAgreementArrays, result: PromptConsensus
) -> Iterator[tuple[Any, ...]]:
    """(run, prompt, n_rankings, agreement, consensus, scores, method) per prompt.

    ``result`` is the consensus of every prompt. Consensus groups best first, responses
    within a group strongest first by their scores, then by import position; scores are the
    fitted log-strengths, rounded to 4 decimals. (Ordered by the rounded scores, so
    strengths equal but for rounding, which the order of summation moves, keep one order.)
    """
    ordered = ordered_slots(result, data.response_ids)
    ordered_levels = ordered.levels.tolist()
    ordered_ids = ordered.ids.tolist()
    ordered_scores = (ordered.scaled_scores / SCORE_SCALE).tolist()
    agreement = prompts.agreement.tolist()
    n_rankings = prompts.n_rankings.tolist()
    for prompt, prompt_id in enumerate(data.prompt_ids.tolist()):
        groups: list[list[int]] = []
        scores: dict[str, float] = {}
        previous = None
        for level, response_id, score in zip(
            ordered_levels[prompt], ordered_ids[prompt], ordered_scores[prompt], strict=True
        ):
            if level == np.inf:
                break
            if level != previous:
                groups.append([])
                previous = level
            groups[-1].append(response_id)
            scores[str(response_id)] = score
        value = agreement[prompt]
        yield (
            run_id,
            prompt_id,
            n_rankings[prompt],
            None if value != value else value,  # NaN: no two rankings of a common pair
            groups,
            scores,
            result.method,
        )


_PROMPT_AGREEMENT_FIELDS = (
    "run",
    "prompt",
    "n_rankings",
    "agreement",
    "consensus",
    "scores",
    "method",
)


def prompt_agreements_writing(
    *, run_id: int, data: AgreementData, part: PromptMaths, portable: bool = False
) -> AbstractContextManager[PromptConsensus]:
    """Fit the consensus and store one PromptAgreement per prompt; yields the consensus.

    COPY on PostgreSQL; batched INSERTs elsewhere, or with ``portable`` (which the tests
    use to hold the two paths to each other).
    """
    if db.is_postgresql() and not portable:
        return _prompt_agreements_copying(run_id=run_id, data=data, part=part)
    return _prompt_agreements_inserting(run_id=run_id, data=data, part=part)


@contextmanager
def _prompt_agreements_inserting(
    *, run_id: int, data: AgreementData, part: PromptMaths
) -> Iterator[PromptConsensus]:
    """The portable path: the rows are inserted in batches before the caller's block."""
    result = consensus_stats.prompt_consensus(part.table, part.reliability)
    rows = prompt_agreement_rows(run_id=run_id, data=data, prompts=part.prompts, result=result)
    attributes = [f"{name}_id" if name in ("run", "prompt") else name
                  for name in _PROMPT_AGREEMENT_FIELDS]  # fmt: skip
    while batch := list(islice(rows, BATCH_SIZE)):
        PromptAgreement.objects.bulk_create(
            PromptAgreement(**dict(zip(attributes, row, strict=True))) for row in batch
        )
    yield result


@contextmanager
def _prompt_agreements_copying(
    *, run_id: int, data: AgreementData, part: PromptMaths
) -> Iterator[PromptConsensus]:
    """The PostgreSQL path: each block of prompts is COPYed from a writer thread as soon as
    its consensus is fitted, so the server inserts one block while the next is fitted, and
    the caller's block runs while the server finishes; the COPY ends when it does.
    """
    fields = [PromptAgreement._meta.get_field(name) for name in _PROMPT_AGREEMENT_FIELDS]
    columns = ", ".join(
        connection.ops.quote_name(str(cast("Field[Any, Any]", field).column)) for field in fields
    )
    table = connection.ops.quote_name(PromptAgreement._meta.db_table)
    blocks = []
    with connection.cursor() as cursor:
        raw_cursor = cursor.cursor
        writer = QueuedLibpqWriter(raw_cursor)
        with raw_cursor.copy(f"COPY {table} ({columns}) FROM STDIN", writer=writer) as copy:
            for start, stop, block in consensus_stats.prompt_consensus_blocks(
                part.table, part.reliability
            ):
                blocks.append(block)
                if stop == start:
                    continue
                copy.write(
                    _prompt_agreement_copy_text(
                        run_id=run_id, data=data, prompts=part.prompts, result=block,
                        start=start, stop=stop,
                    )
                )  # fmt: skip
            yield _joined(blocks, part.table.k_max)


def _joined(blocks: list[PromptConsensus], k_max: int) -> PromptConsensus:
    return PromptConsensus(
        levels=np.concatenate([np.zeros((0, k_max)), *(b.levels for b in blocks)]),
        strength=np.concatenate([np.zeros((0, k_max)), *(b.strength for b in blocks)]),
        agreement=np.concatenate([np.zeros(0), *(b.agreement for b in blocks)]),
        n_rankings=np.concatenate([np.zeros(0, dtype=np.int64), *(b.n_rankings for b in blocks)]),
        method=blocks[0].method if blocks else consensus_stats.BRADLEY_TERRY,
    )


def _prompt_agreement_copy_text(
    *,
    run_id: int,
    data: AgreementData,
    prompts: PromptAgreementArrays,
    result: PromptConsensus,
    start: int,
    stop: int,
) -> bytes:
    """The rows of prompts ``start`` to ``stop`` as COPY text, built with numpy
    (``copy_text``); the same content as ``prompt_agreement_rows`` (a test holds them to
    each other). ``result`` is the consensus of those prompts.
    """
    ordered = ordered_slots(result, data.response_ids[start:stop])
    n_rows, k_max = ordered.levels.shape
    absent = ~np.isfinite(ordered.levels)
    ids = [copy_text.decimal(ordered.ids[:, slot]) for slot in range(k_max)]
    rows = copy_text.Rows(n_rows)
    rows.add_text(f"{run_id}\t")
    rows.add(copy_text.decimal(data.prompt_ids[start:stop]))
    rows.add_text("\t")
    rows.add(copy_text.decimal(prompts.n_rankings[start:stop]))
    rows.add_text("\t")
    rows.add(
        copy_text.by_distinct_values(
            prompts.agreement[start:stop], lambda value: "\\N" if value != value else repr(value)
        )
    )
    rows.add_text("\t")
    _add_consensus(rows, ordered.levels, absent, ids)
    rows.add_text("\t")
    _add_scores(rows, ordered.scaled_scores, absent, ids)
    rows.add_text(f"\t{result.method}\n")
    return rows.text()


def _add_consensus(
    rows: copy_text.Rows, levels: FloatArray, absent: BoolArray, ids: list[copy_text.ByteMatrix]
) -> None:
    """``[[12], [11, 13]]``: tie groups of response ids, best first (``[]`` for none)."""
    any_present = ~absent.all(axis=1)  # the first slot's, in consensus order
    rows.add_either(any_present, "[[", "[")
    for slot in range(levels.shape[1]):
        if slot:
            tied = levels[:, slot] == levels[:, slot - 1]
            rows.add_either(tied, ", ", "], [", blank=absent[:, slot])
        rows.add(ids[slot], blank=absent[:, slot])
    rows.add_either(any_present, "]]", "]")


def _add_scores(
    rows: copy_text.Rows,
    scaled_scores: FloatArray,
    absent: BoolArray,
    ids: list[copy_text.ByteMatrix],
) -> None:
    """``{"12": 1.25, "11": -0.5}``: each response's score, in the consensus order."""
    scores = np.nan_to_num(scaled_scores).astype(np.int64)
    rows.add_text("{")
    for slot in range(scaled_scores.shape[1]):
        blank = absent[:, slot]
        rows.add_text(', "' if slot else '"', blank=blank)
        rows.add(ids[slot], blank=blank)
        rows.add_text('": ', blank=blank)
        rows.add(copy_text.fixed_point(scores[:, slot], SCORE_DECIMALS), blank=blank)
    rows.add_text("}")


@dataclass(frozen=True)
class OrderedSlots:
    """A block's response slots per prompt in consensus order: by tie level (absent slots,
    ``inf``, last), then by score, strongest first."""

    levels: FloatArray
    ids: IntArray
    scaled_scores: FloatArray  # scores (fitted log-strengths) x SCORE_SCALE, rounded


def ordered_slots(result: PromptConsensus, response_ids: IntArray) -> OrderedSlots:
    """Slots in consensus order. Ordered by the rounded scores, so strengths equal but for
    rounding (which the order of summation moves) keep one order."""
    levels = np.where(np.isnan(result.levels), np.inf, result.levels)
    scaled = np.rint(result.strength * SCORE_SCALE)  # what np.round(strength, 4) rounds
    order = np.lexsort((-np.nan_to_num(scaled, nan=-np.inf), levels), axis=1)
    return OrderedSlots(
        levels=np.take_along_axis(levels, order, axis=1),
        ids=np.take_along_axis(response_ids, order, axis=1),
        scaled_scores=np.take_along_axis(scaled, order, axis=1),
    )
