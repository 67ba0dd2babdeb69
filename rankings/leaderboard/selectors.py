"""Reads for the model leaderboard: a project's rankings with each response's model and
length, in bulk, handed to ``rankings.stats.leaderboard``.

Rankings come through the agreement run's readers (the PostgreSQL fast path or the
portable ORM path), so the leaderboard sees exactly what agreement sees: repeats left out,
excluded raters left out unless asked for. Gold prompts are left out (their responses are
often written to test raters, and exports leave them out too); responses without a model
name take no part.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Max

from core import db
from labeling.models import Project, Prompt, Response
from rankings.models import Ranking, RaterScore
from rankings.runs import data as run_data
from rankings.runs import portable as portable_reader
from rankings.runs import postgresql as postgresql_reader
from rankings.runs import selectors as run_selectors
from rankings.runs.raw import IdLookup
from rankings.stats import consensus as consensus_stats
from rankings.stats import leaderboard as leaderboard_stats
from rankings.stats.tables import FloatArray, IntArray, RankingTable, one_ranking_per_rater


class Source(StrEnum):
    RANKINGS = "rankings"
    CONSENSUS = "consensus"


SOURCE_HELP = {
    Source.RANKINGS: "every rater's ranking; a prompt's raters share its vote",
    Source.CONSENSUS: "one consensus ranking per prompt (Bradley-Terry with ties as agreement "
    "runs fit it, raters weighted by the latest run's reliability)",
}


@dataclass(frozen=True)
class LeaderboardInput:
    """What the leaderboard maths read: rankings (or consensus) per prompt, and per prompt
    and slot the model (index into ``model_names``, -1 for none) and the length."""

    table: RankingTable
    model_index: IntArray
    model_names: list[str]
    response_length: FloatArray


def leaderboard_input(
    *, project: Project, source: Source, include_excluded: bool, portable: bool = False
) -> LeaderboardInput:
    """Load a project's rankings with their responses' models and lengths, in bulk."""
    excluded = [] if include_excluded else run_data.excluded_rater_ids(project=project)
    reader = portable_reader if portable or not db.is_postgresql() else postgresql_reader
    raw = reader.read_rankings(project=project, up_to_id=None, excluded=excluded)
    if raw.ranking_ids.size == 0:
        return _nothing_ranked()
    data = run_data.assemble(raw, gold={})
    if source is Source.CONSENSUS:
        # Davidson's consensus per prompt as agreement runs fit it, each rater weighted by
        # the reliability the latest run gave them (refitting reliability here would cost
        # more than the whole leaderboard).
        counted = one_ranking_per_rater(data.agreement_table())
        weights = _reliability_weights(project=project, rater_user_ids=data.rater_user_ids)
        result = consensus_stats.prompt_consensus(counted, weights, consensus_stats.BRADLEY_TERRY)
        table = RankingTable(
            prompt_index=np.arange(data.table.n_prompts),
            rater_index=np.zeros(data.table.n_prompts, dtype=np.int64),
            ranks=result.levels,
            n_prompts=data.table.n_prompts,
        )
    else:
        table = one_ranking_per_rater(data.agreement_table())
    model_names, model_of_response = _response_models(project=project, portable=portable)
    model_index = _models_by_slot(data.response_ids, model_of_response)
    gold = _gold_prompt_ids(project=project)
    if gold.size:
        model_index[np.isin(data.prompt_ids, gold)] = -1
    assert data.context.response_length is not None
    return LeaderboardInput(
        table=table,
        model_index=model_index,
        model_names=model_names,
        response_length=data.context.response_length,
    )


def _nothing_ranked() -> LeaderboardInput:
    return LeaderboardInput(
        table=RankingTable(
            prompt_index=np.zeros(0, dtype=np.int64),
            rater_index=np.zeros(0, dtype=np.int64),
            ranks=np.zeros((0, 0)),
        ),
        model_index=np.zeros((0, 0), dtype=np.int64),
        model_names=[],
        response_length=np.zeros((0, 0)),
    )


def project_leaderboard(
    *,
    project: Project,
    source: Source = Source.RANKINGS,
    include_excluded: bool = False,
    length_control: bool = False,
) -> leaderboard_stats.Leaderboard:
    """The project's model leaderboard (see ``rankings.stats.leaderboard``).

    Computed on demand (about a second of CPU for 100k rankings, see docs/benchmarks.md)
    and cached under a key that changes with everything it reads: the rankings (count,
    newest id, last edit), the excluded raters, the gold prompts, the latest agreement run
    (the consensus weights) and the options. Responses of a ranked prompt cannot change.
    """
    key = _cache_key(
        project=project,
        options=(source.value, include_excluded, length_control),
    )
    cached: leaderboard_stats.Leaderboard | None = cache.get(key)
    if cached is not None:
        return cached
    loaded = leaderboard_input(project=project, source=source, include_excluded=include_excluded)
    board = leaderboard_stats.model_leaderboard(
        loaded.table,
        loaded.model_index,
        loaded.model_names,
        loaded.response_length,
        length_control=length_control,
    )
    cache.set(key, board, CACHE_SECONDS)
    return board


CACHE_SECONDS = 3600
CACHE_VERSION = 1  # bump when the maths change what a cached board holds


def _cache_key(*, project: Project, options: tuple[object, ...]) -> str:
    rankings = Ranking.objects.filter(project=project).aggregate(
        count=Count("id"), last=Max("id"), edited=Max("updated_at")
    )
    excluded = sorted(run_data.excluded_rater_ids(project=project))
    gold = sorted(_gold_prompt_ids(project=project).tolist())
    run = run_selectors.latest_agreement_run(project=project)
    state = repr(
        (
            CACHE_VERSION,
            rankings["count"],
            rankings["last"],
            rankings["edited"],
            excluded,
            gold,
            run.pk if run is not None and options[0] == Source.CONSENSUS.value else None,
            options,
        )
    )
    digest = hashlib.sha256(state.encode()).hexdigest()[:32]
    return f"leaderboard:{project.pk}:{digest}"


# Response models -----------------------------------------------------------------------------

# On PostgreSQL: per model name, its responses' ids as one bytea of 8-byte integers.
_MODELS_SQL = """
    SELECT r.model_name, string_agg(int8send(r.id), ''::bytea)
    FROM labeling_response r JOIN labeling_prompt p ON p.id = r.prompt_id
    WHERE p.project_id = %s AND r.model_name <> ''
    GROUP BY r.model_name
"""


def _response_models(*, project: Project, portable: bool) -> tuple[list[str], dict[str, IntArray]]:
    """The project's model names (sorted) and, per name, the ids of its responses."""
    by_name: dict[str, IntArray] = {}
    if not portable and db.is_postgresql():
        with connection.cursor() as cursor:
            cursor.execute(_MODELS_SQL, [project.pk])
            for name, ids in cursor.fetchall():
                by_name[name] = np.frombuffer(bytes(ids), dtype=">i8").astype(np.int64)
    else:
        collected: dict[str, list[int]] = {}
        rows = (
            Response.objects.filter(prompt__project=project)
            .exclude(model_name="")
            .values_list("id", "model_name")
            .iterator(chunk_size=20_000)
        )
        for response_id, name in rows:
            collected.setdefault(name, []).append(response_id)
        by_name = {name: np.array(ids, dtype=np.int64) for name, ids in collected.items()}
    names = sorted(by_name)
    return names, {name: by_name[name] for name in names}


def _models_by_slot(response_ids: IntArray, model_of_response: dict[str, IntArray]) -> IntArray:
    """``(P, K)`` model index of each slot's response; -1 where absent or without a model."""
    names = list(model_of_response)
    if not names:
        return np.full(response_ids.shape, -1, dtype=np.int64)
    ids = np.concatenate([np.zeros(0, dtype=np.int64), *model_of_response.values()])
    model = np.repeat(np.arange(len(names)), [len(part) for part in model_of_response.values()])
    found = IdLookup(ids)(response_ids.ravel()).reshape(response_ids.shape)
    present = (found >= 0) & (response_ids > 0)
    return np.where(present, model[np.maximum(found, 0)], -1)


def _gold_prompt_ids(*, project: Project) -> IntArray:
    ids = Prompt.objects.filter(project=project, is_gold=True).values_list("id", flat=True)
    return np.array(list(ids), dtype=np.int64)


def _reliability_weights(*, project: Project, rater_user_ids: list[int]) -> FloatArray:
    """Per rater (in ``rater_user_ids`` order), the reliability weight of the latest
    agreement run; raters it did not weigh (new, or excluded then) get the median of the
    others, and everyone 1 before the first run."""
    run = run_selectors.latest_agreement_run(project=project)
    stored: dict[int, float | None] = {}
    if run is not None:
        stored = dict(
            RaterScore.objects.filter(run=run).values_list("rater_id", "reliability_weight")
        )
    weights = np.array(
        [np.nan if stored.get(user_id) is None else stored[user_id] for user_id in rater_user_ids],
        dtype=np.float64,
    )
    known = ~np.isnan(weights)
    fill = float(np.median(weights[known])) if known.any() else 1.0
    return np.where(known, weights, fill)
