"""The portable export reading (plain ORM rows, the path SQLite takes) against the PostgreSQL
fast path (one JSON document per batch, JSON rows for incremental exports) over the same data.

On SQLite both names run the portable path, so these only mean something on PostgreSQL.
"""

from __future__ import annotations

import random
from datetime import timedelta

import orjson
import pytest
from django.utils import timezone

from core import db
from exports import selectors, services
from exports.params import export_params_clean
from exports.selectors import reading
from labeling.models import Membership, Prompt, Response
from rankings.models import Flag, Ranking
from tests.helpers import import_prompts, sample_records

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.postgresql("compares the PostgreSQL fast path with the portable one"),
]


@pytest.fixture
def varied(project, make_user, add_member, make_ranking) -> list[Prompt]:
    """Twenty-five prompts of two to four responses ranked by up to four raters, with ties,
    strengths, repeats, gold, complete prompts, an excluded and a flagged rater, rankings
    spread over a week, and texts that JSON must keep exactly."""
    records = sample_records(25, responses=4, prefix="varied")
    for index, record in enumerate(records):
        record["responses"] = record["responses"][: 2 + index % 3]
        record["responses"][0]["text"] = f'Ünïcode "quoted"\n\ttab \\ back {index} \u2028 😀'
    del records[3]["prompt"]
    records[3]["messages"] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi\nthere"},
    ]
    prompts = import_prompts(project, records)
    raters = [add_member(make_user(f"varied{index}")) for index in range(4)]
    Membership.objects.filter(project=project, user=raters[2]).update(excluded=True)
    Flag.objects.create(project=project, rater=raters[3], code="TOO_FAST", status="open")
    Prompt.objects.filter(pk=prompts[5].pk).update(is_complete=True)
    Prompt.objects.filter(pk=prompts[6].pk).update(is_gold=True, gold_ranking=[[1], [2]])
    rng = random.Random(11)
    now = timezone.now()
    for prompt in prompts:
        if prompt.pk == prompts[7].pk:
            continue  # no rankings at all
        k = Response.objects.filter(prompt=prompt).count()
        for rater in raters[: rng.randint(1, 4)]:
            positions = rng.sample(range(k), k)
            groups = (
                [positions[:2], positions[2:]] if rng.random() < 0.3 else [[p] for p in positions]
            )
            make_ranking(
                prompt,
                rater,
                [group for group in groups if group],
                strength=rng.choice([None, 0, 3]),
                created_at=now - timedelta(days=rng.randint(0, 7)),
            )
        if rng.random() < 0.2:
            make_ranking(prompt, raters[0], [[p] for p in range(k)], is_repeat=True)
    return prompts


FILTERS = [
    {},
    {"include_gold": True, "min_raters": 2},
    {"exclude_flagged_raters": True, "exclude_excluded_raters": False},
    {"only_complete": True},
    {
        "created_after": timezone.now() - timedelta(days=4),
        "created_before": timezone.now() - timedelta(days=1),
    },
]


def filters_of(project, params: dict) -> selectors.ExportFilters:
    return selectors.export_filters(project=project, params=export_params_clean(params))


def both_readings(project, filters, batch_size):
    if isinstance(filters, dict):
        filters = filters_of(project, filters)
    fast = list(selectors.prompt_batches(project=project, filters=filters, batch_size=batch_size))
    portable = list(
        selectors.prompt_batches(
            project=project, filters=filters, batch_size=batch_size, portable=True
        )
    )
    return fast, portable


@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("batch_size", [4, 1000])
def test_full_export_batches_are_the_same_on_both_paths(project, varied, filters, batch_size):
    fast, portable = both_readings(project, filters, batch_size)

    assert fast == portable
    assert any(batch for batch in fast)


@pytest.mark.parametrize("filters", FILTERS[:3])
def test_incremental_export_batches_are_the_same_on_both_paths(project, varied, filters):
    skipping = selectors.export_filters(
        project=project,
        params=export_params_clean(filters),
        skip_prompt_ids=frozenset(p.pk for p in varied[::3]),
    )
    fast, portable = both_readings(project, skipping, batch_size=4)

    assert fast == portable
    exported = {prompt.prompt_id for batch in fast for prompt, _ in batch}
    assert exported and not any(prompt_id in skipping.skip_prompt_ids for prompt_id in exported)


def test_snapshot_reads_the_same_on_both_paths(project, varied):
    newest = sorted(Ranking.objects.filter(project=project).values_list("id", flat=True))
    filters = filters_of(project, {"until_ranking_id": newest[len(newest) // 2]})

    fast, portable = both_readings(project, filters, batch_size=7)

    assert fast == portable


def test_json_rows_and_plain_rows_read_the_same_values(project, varied):
    columns = ("id", "prompt_id", "rater_id", "groups", "strength")
    rankings = Ranking.objects.filter(project=project)

    json_rows = reading.json_rows(rankings, columns, order=("prompt_id", "id"))
    plain_rows = reading.plain_rows(rankings, columns, order=("prompt_id", "id"))

    assert [tuple(row) for row in json_rows] == plain_rows and plain_rows
    nothing = rankings.filter(id__lt=0)
    assert reading.json_rows(nothing, columns, order=("id",)) == []
    assert reading.plain_rows(nothing, columns, order=("id",)) == []


@pytest.mark.parametrize("strategy", ["all_pairs", "best_vs_rest", "best_vs_worst", "consensus"])
def test_rows_with_soft_labels_are_the_same_on_both_paths(project, varied, strategy, monkeypatch):
    params = {"soft_labels": True, "include_ties": True, "include_gold": True}

    def stream() -> bytes:
        return b"".join(
            services.export_stream_open(
                project=project, format="trl-reward", strategy=strategy, params=params
            )
        )

    fast = stream()
    monkeypatch.setattr(db, "is_postgresql", lambda: False)
    portable = stream()

    assert fast == portable
    rows = [orjson.loads(line) for line in fast.splitlines()]
    assert any(0 < row["chosen_votes"] < row["total_votes"] for row in rows)
    assert any(row["tie_votes"] for row in rows)
