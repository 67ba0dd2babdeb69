"""Vote counts per pair (`soft_labels`): counted by brute force on random rankings for every
strategy, declared once as columns of every format, written by jobs and read by `datasets`."""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import random
from dataclasses import replace

import orjson
import pytest

from exports import services
from exports.formats import (
    FORMATS,
    METADATA_COLUMNS,
    SOFT_LABEL_COLUMNS,
    format_spec,
    rows_for_pairs,
)
from exports.models import ExportJob
from exports.pairs import (
    STRATEGIES,
    PromptData,
    RankingData,
    ResponseData,
    build_consensus_pairs,
    build_pairs,
)
from exports.params import PARAMS_BY_NAME, Scope, export_params_clean
from tests.exports.rated import CONTAINERS, RECORDS, export, load

SOFT = [column.name for column in SOFT_LABEL_COLUMNS]


def random_prompt(rng: random.Random, prompt_id: int) -> tuple[PromptData, list[RankingData]]:
    """Two to six responses ranked by one to five raters, with ties and partial rankings."""
    ids = [100 * prompt_id + slot for slot in range(rng.randint(2, 6))]
    prompt = PromptData(
        prompt_id,
        "",
        [{"role": "user", "content": "?"}],
        {i: ResponseData(i, "", "", "m") for i in ids},
    )
    rankings = []
    for rater in range(rng.randint(1, 5)):
        shown = rng.sample(ids, rng.randint(2, len(ids)) if rng.random() < 0.2 else len(ids))
        groups: list[list[int]] = []
        for response_id in shown:
            if groups and rng.random() < 0.3:
                groups[-1].append(response_id)
            else:
                groups.append([response_id])
        rankings.append(RankingData(rater + 1, prompt_id, f"key{rater}", groups))
    return prompt, rankings


def brute_force_votes(rankings: list[RankingData], chosen: int, rejected: int) -> tuple:
    """(chosen above, tied, ranked both), straight from the tie groups."""
    above = tied = both = 0
    for ranking in rankings:
        level = {rid: index for index, group in enumerate(ranking.groups) for rid in group}
        if chosen in level and rejected in level:
            both += 1
            above += level[chosen] < level[rejected]
            tied += level[chosen] == level[rejected]
    return above, tied, both


@pytest.mark.parametrize("strategy", [*STRATEGIES, "consensus"])
def test_vote_counts_equal_a_brute_force_count_on_random_rankings(strategy):
    rng = random.Random(7)
    checked = ties = 0
    for prompt_id in range(1, 300):
        prompt, rankings = random_prompt(rng, prompt_id)
        if strategy == "consensus":
            order = rng.sample(list(prompt.responses), len(prompt.responses))
            groups = [order[:2], *([rid] for rid in order[2:])]
            scores = {rid: float(-index) for index, rid in enumerate(order)}
            pairs = build_consensus_pairs(prompt, rankings, groups, scores, include_ties=True)
        else:
            pairs = build_pairs(prompt, rankings, strategy, include_ties=True)
        for pair in pairs:
            above, tied, both = brute_force_votes(rankings, pair.chosen_id, pair.rejected_id)
            assert (pair.chosen_votes, pair.tie_votes, pair.total_votes) == (above, tied, both)
            # The agreement is the share of the votes that agree with the row.
            agreeing = tied if pair.margin == 0 else above
            assert pair.agreement == (agreeing / both if both else 0.0)
            checked += 1
            ties += pair.margin == 0
    assert checked > 1000 and ties > 50


def test_soft_labels_is_one_shape_parameter_off_by_default():
    param = PARAMS_BY_NAME["soft_labels"]

    assert param.scope is Scope.SHAPE and param.default is False
    assert export_params_clean({})["soft_labels"] is False
    assert all(name in param.help for name in SOFT)


@pytest.mark.parametrize("spec", FORMATS, ids=lambda spec: spec.name)
def test_every_format_carries_the_vote_columns_only_when_asked(spec):
    metadata = [column.name for column in spec.columns_with(True)]
    plain = [column.name for column in spec.columns_with(False)]

    with_votes = [column.name for column in spec.columns_with(True, soft_labels=True)]
    plain_with_votes = [column.name for column in spec.columns_with(False, soft_labels=True)]

    assert not set(SOFT) & set(metadata + plain)
    # Next to agreement with metadata on (one run of pair values); at the end without.
    after = with_votes.index("agreement") + 1
    assert with_votes[after : after + 3] == SOFT
    assert [name for name in with_votes if name not in SOFT] == metadata
    assert plain_with_votes == plain + SOFT
    assert {column.name for column in METADATA_COLUMNS} <= set(with_votes)


@pytest.mark.parametrize("spec", FORMATS, ids=lambda spec: spec.name)
def test_rows_carry_each_pair_s_votes(spec):
    prompt, rankings = random_prompt(random.Random(3), 1)
    pairs = build_pairs(prompt, rankings, "all_pairs")
    if spec.needs_scores:
        prompt = replace(prompt, scores=dict.fromkeys(prompt.responses, 5.5))

    rows = rows_for_pairs(spec.name, pairs, prompt, "train", True, True)

    per_pair = spec.rows_per_pair
    for index, row in enumerate(rows):
        pair = pairs[index // per_pair]
        assert [row[name] for name in SOFT] == [
            pair.chosen_votes,
            pair.tie_votes,
            pair.total_votes,
        ]


# --- jobs, and what `datasets` reads ----------------------------------------------------------


def rows_of(job: ExportJob, export_folder) -> list[dict]:
    return [
        orjson.loads(line) for line in (export_folder / job.file.name).read_bytes().splitlines()
    ]


@pytest.mark.django_db
def test_an_export_with_soft_labels_counts_the_raters_votes(rated, engineer, export_folder):
    job = export(rated, engineer, format="trl", params={"soft_labels": True})

    rows = rows_of(job, export_folder)

    # Per prompt (responses 0, 1, 2): rankings [[2], [0], [1]], [[0], [2], [1]], [[2, 0], [1]].
    texts = {
        response["text"]: slot
        for record in RECORDS
        for slot, response in enumerate(record["responses"])
    }
    votes = {
        (texts[row["chosen"]], texts[row["rejected"]]): (
            row["chosen_votes"],
            row["tie_votes"],
            row["total_votes"],
        )
        for row in rows
    }
    assert votes == {(2, 0): (1, 1, 3), (0, 2): (1, 1, 3), (2, 1): (3, 0, 3), (0, 1): (3, 0, 3)}
    assert all(row["agreement"] == row["chosen_votes"] / row["total_votes"] for row in rows)


@pytest.mark.django_db
def test_soft_labels_off_writes_the_same_bytes_as_a_job_recorded_before_the_parameter(
    rated, engineer, export_folder
):
    plain = export(rated, engineer, format="trl-reward")
    older = services.export_job_create(project=rated, created_by=engineer, format="trl-reward")
    params = dict(older.params)
    del params["soft_labels"]  # as an export recorded before soft labels existed
    ExportJob.objects.filter(pk=older.pk).update(params=params)

    services.export_job_run(job_id=older.pk)

    older.refresh_from_db()
    assert older.status == "done" and older.sha256 == plain.sha256
    assert not set(SOFT) & set(rows_of(plain, export_folder)[0])


@pytest.mark.django_db
@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("fmt", ["trl", "trl-unpaired", "openai"])
def test_datasets_loads_the_vote_columns_as_integers(
    rated, engineer, export_folder, tmp_path, container, fmt
):
    job = export(rated, engineer, format=fmt, container=container, params={"soft_labels": True})

    data = load(job, export_folder, tmp_path)

    names = [column.name for column in format_spec(fmt).columns_with(True, soft_labels=True)]
    assert data.column_names == names
    for name in SOFT:
        assert data.features[name].dtype == "int64"
    assert set(data["total_votes"]) == {3}
    votes = zip(data["chosen_votes"], data["total_votes"], strict=True)
    assert [chosen / total for chosen, total in votes] == data["agreement"]
