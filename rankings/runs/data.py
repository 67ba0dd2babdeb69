"""The arrays an agreement run computes on, read in bulk and indexed densely.

``agreement_data`` reads with the PostgreSQL fast path or the portable ORM path (the tests
hold the two to each other) and assembles ``rankings.stats`` tables from what they read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core import db
from labeling.models import Membership, Project, Prompt
from rankings.runs import portable as portable_reader
from rankings.runs import postgresql as postgresql_reader
from rankings.runs.raw import IdLookup, PromptRange, RawRankings, dense_index
from rankings.stats.tables import IntArray, RankingContext, RankingTable

# Rankings per block when the arrays are assembled.
ASSEMBLE_BLOCK = 200_000


def excluded_rater_ids(*, project: Project) -> list[int]:
    return list(
        Membership.objects.filter(project=project, excluded=True).values_list("user_id", flat=True)
    )


@dataclass(frozen=True)
class AgreementData:
    """Everything an agreement run computes on, as dense arrays (see ``rankings.stats.tables``).

    ``table`` holds every ranking of the raters who count (excluded raters are left out
    entirely), repeats included, in ranking-id order; ``context.is_repeat`` says which rows
    are repeats. Slots are the responses' import positions.
    """

    table: RankingTable
    context: RankingContext
    rater_user_ids: list[int]
    prompt_ids: IntArray
    response_ids: IntArray  # (n_prompts, k_max) response id per slot, 0 where absent
    ranking_ids: IntArray

    def agreement_table(self) -> RankingTable:
        """The rankings that count toward agreement: repeats left out."""
        assert self.context.is_repeat is not None
        return self.table.take(~self.context.is_repeat)


def agreement_data(
    *,
    project: Project,
    up_to_id: int | None = None,
    portable: bool = False,
    prompts: PromptRange | None = None,
    excluded: list[int] | None = None,
    readers: postgresql_reader.Readers | None = None,
) -> AgreementData:
    """Load a project's rankings up to ``up_to_id`` with everything the metrics need, in bulk.

    On PostgreSQL the database writes rankings, shown orders and response lengths as a few
    large binary values per id range, read with numpy (``postgresql``): a million
    rankings never become a million Python objects. Elsewhere, or with ``portable`` (which
    the tests use to hold the two paths to each other), the ORM path reads the same. Given
    a prompt range, only the rankings of those prompts (one part of a run, see ``parts``);
    ``readers`` keeps the PostgreSQL reader's threads and connections from part to part.
    """
    if excluded is None:
        excluded = excluded_rater_ids(project=project)
    if portable or not db.is_postgresql():
        raw = portable_reader.read_rankings(
            project=project, up_to_id=up_to_id, excluded=excluded, prompts=prompts
        )
    else:
        raw = postgresql_reader.read_rankings(
            project=project, up_to_id=up_to_id, excluded=excluded, prompts=prompts,
            readers=readers,
        )  # fmt: skip
    gold_prompts = Prompt.objects.filter(project=project, is_gold=True)
    if prompts is not None:
        gold_prompts = gold_prompts.filter(id__gt=prompts[0], id__lte=prompts[1])
    return assemble(raw, dict(gold_prompts.values_list("id", "gold_ranking")))


def assemble(raw: RawRankings, gold: dict[int, Any]) -> AgreementData:
    """Dense prompt, rater and slot indices over what a reader read; gold ranks per prompt."""
    order = np.argsort(raw.ranking_ids, kind="stable")
    prompt_ids, prompt_index = dense_index(raw.prompt_ids[order])
    rater_ids, rater_index = dense_index(raw.rater_ids[order])
    n_rankings, n_prompts = len(order), len(prompt_ids)

    # Responses of the ranked prompts, by (prompt index, slot).
    response_prompt = IdLookup(prompt_ids)(raw.response_prompts)
    keep = response_prompt >= 0
    response_ids = raw.response_ids[keep]
    response_prompt = response_prompt[keep]
    response_slot = raw.response_positions[keep]
    k_max = int(response_slot.max()) + 1 if response_slot.size else 0
    ids_by_slot = np.zeros((n_prompts, k_max), dtype=np.int64)
    ids_by_slot[response_prompt, response_slot] = response_ids
    length = np.full((n_prompts, k_max), np.nan)
    length[response_prompt, response_slot] = raw.response_lengths[keep]
    response_of = IdLookup(response_ids)

    def slots_of(ids: IntArray, prompts: IntArray) -> IntArray:
        """The slot of each response id in its row's prompt; -1 for padding or a stranger."""
        found = response_of(ids.ravel()).reshape(ids.shape)
        known = found >= 0
        found = np.where(known, found, 0)
        known &= response_prompt[found] == prompts[:, np.newaxis]
        return np.where(known, response_slot[found], -1)

    ranks = np.full((n_rankings, k_max), np.nan)
    shown_slots = np.full((n_rankings, k_max), -1, dtype=np.int8)
    # In blocks of rankings: the id lookups make several temporaries the size of the block.
    for start in range(0, n_rankings, ASSEMBLE_BLOCK):
        block = order[start : start + ASSEMBLE_BLOCK]
        prompts = prompt_index[start : start + ASSEMBLE_BLOCK]
        group_slots = slots_of(raw.group_ids[block], prompts)
        rows, columns = np.nonzero(group_slots >= 0)
        levels = raw.group_levels[block]
        ranks[start + rows, group_slots[rows, columns]] = levels[rows, columns]
        shown = slots_of(raw.shown_ids(block)[:, :k_max], prompts)
        shown_slots[start : start + len(block), : shown.shape[1]] = shown

    gold_ranks = np.full((n_prompts, k_max), np.nan)
    prompt_of = IdLookup(prompt_ids)
    for prompt_id, groups in gold.items():
        prompt = int(prompt_of(np.array([prompt_id]))[0])
        if prompt < 0 or not groups:
            continue
        for level, group in enumerate(groups, start=1):
            found = response_of(np.array([int(item) for item in group], dtype=np.int64))
            found = found[found >= 0]
            found = found[response_prompt[found] == prompt]
            gold_ranks[prompt, response_slot[found]] = level

    table = RankingTable(
        prompt_index=prompt_index,
        rater_index=rater_index,
        ranks=ranks,
        n_prompts=n_prompts,
        n_raters=len(rater_ids),
    )
    context = RankingContext(
        is_repeat=raw.is_repeat[order],
        shown_slots=shown_slots,
        seconds=raw.seconds[order],
        gold_ranks=gold_ranks,
        response_length=length,
    )
    return AgreementData(
        table=table,
        context=context,
        rater_user_ids=[int(user_id) for user_id in rater_ids],
        prompt_ids=prompt_ids,
        response_ids=ids_by_slot,
        ranking_ids=raw.ranking_ids[order],
    )
