"""RLAIF pairs through the export registries (`source` human | ai | both, `judge_endpoint`):
AI pairs from the judge's verdicts by the same strategies, votes over its two shown orders
checked by brute force, a `source` column in every format, default exports unchanged,
both reading paths and repeated jobs giving the same bytes."""

from __future__ import annotations

import io
import random

import orjson
import pyarrow.parquet as pq
import pytest

from exports import selectors
from exports.formats import FORMAT_NAMES, JsonlEncoder, encode_row, format_spec, rows_for_pairs
from exports.pairs import (
    AI,
    STRATEGIES,
    PromptData,
    RankingData,
    ResponseData,
    build_judge_pairs,
    build_pairs,
)
from exports.params import export_params_clean
from labeling.models import Prompt
from llm.models import CallStatus, JudgeVerdict, ModelEndpoint
from tests.exports.rated import export
from tests.helpers import import_prompts, sample_records

pytestmark = pytest.mark.django_db

# --- the pairs, by brute force on random verdicts ----------------------------------------


def random_groups(rng: random.Random, ids: list[int]) -> list[list[int]]:
    groups: list[list[int]] = []
    for response_id in rng.sample(ids, len(ids)):
        if groups and rng.random() < 0.3:
            groups[-1].append(response_id)
        else:
            groups.append([response_id])
    return groups


def level(groups: list[list[int]]) -> dict[int, int]:
    return {member: index for index, group in enumerate(groups) for member in group}


@pytest.mark.parametrize("strategy", [*STRATEGIES, "consensus"])
@pytest.mark.parametrize("include_ties", [False, True])
def test_judge_pairs_match_a_brute_force_count(strategy, include_ties):
    rng = random.Random(7)
    for prompt_id in range(1, 80):
        ids = [10 * prompt_id + slot for slot in range(rng.randint(2, 6))]
        prompt = PromptData(prompt_id, "", [], {i: ResponseData(i, "", "", "m") for i in ids})
        verdict = RankingData(0, prompt_id, "ai-1", random_groups(rng, ids))
        orders = [RankingData(0, prompt_id, f"ai-1-{n}", random_groups(rng, ids)) for n in "ab"]

        built = build_judge_pairs(prompt, verdict, orders, strategy, include_ties)

        # Pairs: exactly what the strategy gives the verdict as a rater's ranking.
        paired = "all_pairs" if strategy == "consensus" else strategy
        as_rater = build_pairs(prompt, [verdict], paired, include_ties=include_ties)
        assert [(p.chosen_id, p.rejected_id, p.margin) for p in built] == [
            (p.chosen_id, p.rejected_id, p.margin) for p in as_rater
        ]
        for pair in built:
            chosen_levels = [level(o.groups)[pair.chosen_id] for o in orders]
            rejected_levels = [level(o.groups)[pair.rejected_id] for o in orders]
            above = sum(c < r for c, r in zip(chosen_levels, rejected_levels, strict=True))
            tied = sum(c == r for c, r in zip(chosen_levels, rejected_levels, strict=True))
            same = tied if pair.margin == 0 else above
            assert (pair.chosen_votes, pair.tie_votes, pair.total_votes) == (above, tied, 2)
            assert pair.agreement == same / 2
            assert pair.source == AI and pair.n_raters == 2
            assert pair.rater_keys == ("ai-1-a", "ai-1-b")


def test_human_pairs_say_human():
    prompt = PromptData(1, "", [], {i: ResponseData(i, "", "", "m") for i in (1, 2, 3)})
    pairs = build_pairs(prompt, [RankingData(5, 1, "k", [[2], [1, 3]])], "all_pairs")
    assert pairs and {pair.source for pair in pairs} == {"human"}


@pytest.mark.parametrize("fmt", sorted(FORMAT_NAMES))
@pytest.mark.parametrize("with_metadata", [True, False])
def test_the_source_column_follows_the_format_columns_in_every_rendering(fmt, with_metadata):
    spec = format_spec(fmt)
    names = [column.name for column in spec.columns_with(with_metadata, True, True)]
    assert names[len(spec.columns)] == "source"
    assert "source" not in [c.name for c in spec.columns_with(with_metadata, True)]
    ids = [1, 2, 3]
    responses = {i: ResponseData(i, "", f"t{i}", "m") for i in ids}
    messages = [{"role": "user", "content": "q"}]
    prompt = PromptData(9, "x", messages, responses, scores={1: 10.0, 2: 5.5, 3: 1.0})
    orders = [RankingData(0, 9, "o", [[1], [2], [3]]), RankingData(0, 9, "r", [[2], [1], [3]])]
    pairs = build_judge_pairs(prompt, orders[0], orders, "all_pairs")
    rows = rows_for_pairs(fmt, pairs, prompt, "train", with_metadata, True, True)
    assert rows and {row["source"] for row in rows} == {"ai"}
    encoded = JsonlEncoder(spec, with_metadata, True, True).encode([(prompt, pairs, "train")])
    assert b"".join(encoded[0]) == b"".join(encode_row(row) for row in rows)


# --- exports of a judged project ----------------------------------------------------------


@pytest.fixture
def judged(project, rater, rater2, make_ranking):
    """Six prompts: four ranked by two raters, one gold; the judge has verdicts on five
    (one position-inconsistent, one on an unranked prompt, one stale), a failed one, and a
    second endpoint's verdicts that must never show."""
    prompts = import_prompts(project, sample_records(6, responses=3, prefix="j"))
    for prompt in prompts[:4]:
        make_ranking(prompt, rater, [[0], [1], [2]])
        make_ranking(prompt, rater2, [[1], [0], [2]])
    Prompt.objects.filter(pk=prompts[3].pk).update(is_gold=True, gold_ranking=[[1], [2]])
    judge = ModelEndpoint.objects.create(
        project=project, name="judge", base_url="http://127.0.0.1:9/v1", model="m"
    )
    other = ModelEndpoint.objects.create(
        project=project, name="other", base_url="http://127.0.0.1:9/v1", model="m"
    )

    def ids(prompt):
        return list(prompt.responses.order_by("position").values_list("pk", flat=True))

    def verdict(prompt, groups, forward=None, reverse=None, endpoint=judge, **extra):
        JudgeVerdict.objects.create(
            endpoint=endpoint, prompt=prompt, status=extra.pop("status", CallStatus.DONE),
            groups=groups, forward=forward or groups, reverse=reverse or groups,
            consistent=forward is None, **extra,
        )  # fmt: skip

    a, b, c = ids(prompts[0])
    verdict(prompts[0], [[c], [a], [b]])
    a, b, c = ids(prompts[1])
    verdict(prompts[1], [[a, b], [c]], forward=[[a], [b], [c]], reverse=[[b], [a], [c]])
    verdict(prompts[3], [[c], [b], [a]])  # gold: left out by default
    a, b, c = ids(prompts[4])
    verdict(prompts[4], [[b], [c], [a]])  # nobody ranked it
    verdict(prompts[5], [[999999], [a]])  # stale: names responses it does not have
    a, b, c = ids(prompts[2])
    verdict(prompts[2], [], status=CallStatus.FAILED, error="malformed")
    verdict(prompts[2], [[a], [b], [c]], endpoint=other)
    return prompts, judge, other


def stream(api, project, **query) -> list[dict]:
    response = api.get(f"/api/projects/{project.pk}/exports/stream/", query)
    assert response.status_code == 200, response.content
    return [orjson.loads(line) for line in b"".join(response.streaming_content).splitlines()]


def test_the_default_export_is_unchanged_by_verdicts(api_for, engineer, project, judged):
    with_verdicts = stream(api_for(engineer), project, format="trl")
    JudgeVerdict.objects.all().delete()
    assert stream(api_for(engineer), project, format="trl") == with_verdicts
    assert with_verdicts and all("source" not in row for row in with_verdicts)
    assert len(with_verdicts) == 3 * 2 * 3  # three non-gold ranked prompts, 2 raters, 3 pairs


def test_ai_rows_are_the_judges_pairs_only(api_for, engineer, project, judged):
    prompts, judge, _ = judged
    rows = stream(api_for(engineer), project, format="trl", source="ai", judge_endpoint=judge.pk)
    assert {row["source"] for row in rows} == {"ai"}
    by_prompt: dict[int, list[dict]] = {}
    for row in rows:
        by_prompt.setdefault(row["prompt_id"], []).append(row)
    # Gold, stale, failed and the other endpoint's verdicts give nothing.
    assert list(by_prompt) == [prompts[0].pk, prompts[1].pk, prompts[4].pk]
    a, b, c = prompts[0].responses.order_by("position").values_list("pk", flat=True)
    assert [(r["chosen_id"], r["rejected_id"]) for r in by_prompt[prompts[0].pk]] == [
        (c, a), (c, b), (a, b)
    ]  # fmt: skip
    assert all(r["agreement"] == 1.0 and r["n_raters"] == 2 for r in by_prompt[prompts[0].pk])
    flipped = by_prompt[prompts[1].pk]  # [[a, b], [c]]: a>c and b>c, the a-b tie not exported
    assert len(flipped) == 2 and all(r["agreement"] == 1.0 for r in flipped)
    assert rows[0]["rater_keys"] == [f"ai-{judge.pk}-original", f"ai-{judge.pk}-reversed"]


def test_low_confidence_pairs_have_half_agreement_and_can_be_filtered(
    api_for, engineer, project, judged
):
    prompts, judge, _ = judged
    api = api_for(engineer)
    query = {"format": "trl", "source": "ai", "judge_endpoint": judge.pk, "include_ties": "true"}
    rows = stream(api, project, **query)
    tie = [r for r in rows if r["prompt_id"] == prompts[1].pk and r["margin"] == 0]
    assert len(tie) == 1 and tie[0]["agreement"] == 0.0  # neither order tied them
    strict = stream(api, project, **query, min_agreement="1")
    assert len(strict) == len(rows) - 1 and all(r["agreement"] == 1.0 for r in strict)


def test_both_keeps_the_human_rows_and_adds_the_ai_ones(api_for, engineer, project, judged):
    _, judge, _ = judged
    api = api_for(engineer)
    human = stream(api, project, format="trl-conversational")
    both = stream(api, project, format="trl-conversational", source="both", judge_endpoint=judge.pk)
    ai = stream(api, project, format="trl-conversational", source="ai", judge_endpoint=judge.pk)
    assert [r for r in both if r["source"] == "human"] == [
        {**row, "source": "human"} for row in human
    ]
    assert [r for r in both if r["source"] == "ai"] == ai
    assert list(both[0])[:4] == ["prompt", "chosen", "rejected", "source"]
    # Prompt by prompt in id order, a prompt's human rows before its AI rows.
    order = [(r["prompt_id"], r["source"] == "ai") for r in both]
    assert order == sorted(order)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"source": "ai"}, "judge_endpoint"),
        ({"source": "both", "judge_endpoint": "999999"}, "judge_endpoint"),
        ({"source": "robots"}, "source"),
        ({"source": "ai", "judge_endpoint": "x"}, "judge_endpoint"),
    ],
)
def test_bad_source_parameters_are_a_400(api_for, engineer, project, judged, query, field):
    response = api_for(engineer).get(
        f"/api/projects/{project.pk}/exports/stream/", {"format": "trl", **query}
    )
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field


def test_another_projects_endpoint_is_refused(project, judged, lead):
    from labeling import services as labeling_services

    elsewhere = labeling_services.project_create(name="elsewhere", creator=lead)
    stranger = ModelEndpoint.objects.create(
        project=elsewhere, name="x", base_url="http://127.0.0.1:9/v1", model="m"
    )
    with pytest.raises(Exception) as refused:
        export_params_clean({"source": "ai", "judge_endpoint": stranger.pk}, project=project)
    assert getattr(refused.value, "field", None) == "judge_endpoint"


@pytest.mark.parametrize("container", ["jsonl", "parquet"])
def test_jobs_with_ai_rows_are_reproducible(project, engineer, judged, export_folder, container):
    _, judge, _ = judged
    params = {"source": "both", "judge_endpoint": judge.pk, "soft_labels": True}
    first = export(project, engineer, format="trl", container=container, params=params)
    second = export(project, engineer, format="trl", container=container, params=params)
    assert first.sha256 and first.sha256 == second.sha256
    human = export(project, engineer, format="trl", container=container, params={})
    assert human.sha256 != first.sha256 and first.rows > human.rows
    data = (export_folder / first.file.name).read_bytes()
    if container == "parquet":
        table = pq.read_table(io.BytesIO(data))
        sources = table.column("source").to_pylist()
        assert table.schema.names[3] == "source"
    else:
        sources = [orjson.loads(line)["source"] for line in data.splitlines()]
    assert sources.count("human") == human.rows and sources.count("ai") == first.rows - human.rows


@pytest.mark.postgresql("compares the PostgreSQL fast path with the portable one")
@pytest.mark.parametrize("source", ["ai", "both"])
@pytest.mark.parametrize("batch_size", [1, 2, 1000])
def test_both_reading_paths_give_the_same_sourced_batches(project, judged, source, batch_size):
    _, judge, _ = judged
    params = export_params_clean({"source": source, "judge_endpoint": judge.pk}, project=project)
    filters = selectors.export_filters(project=project, params=params)

    def read(portable: bool):
        return [
            item
            for batch in selectors.sourced_prompt_batches(
                project=project,
                filters=filters,
                source=source,
                judge_endpoint=judge.pk,
                batch_size=batch_size,
                portable=portable,
            )
            for item in batch
        ]

    fast, portable = read(False), read(True)
    assert fast == portable and any(judge_data for _, _, judge_data in fast)


def test_an_incremental_export_skips_judged_prompts_already_exported(project, engineer, judged):
    prompts, judge, _ = judged
    params = {"source": "ai", "judge_endpoint": judge.pk}
    first = export(project, engineer, format="trl", params=params)
    JudgeVerdict.objects.filter(endpoint=judge, prompt=prompts[2]).update(
        status=CallStatus.DONE,
        groups=[[pk] for pk in prompts[2].responses.values_list("pk", flat=True)],
    )  # the failed verdict, judged again (without its orders: counts as one)
    later = export(project, engineer, format="trl", params={**params, "since_export": first.pk})
    assert later.rows == 3 and later.prompts == 1


def test_the_estimate_counts_ai_pairs(project, judged):
    from exports.services.batches import ExportRequest, rows_estimate
    from exports.services.prompt_ids import earlier_prompt_ids

    _, judge, _ = judged

    def estimate(**params):
        cleaned = export_params_clean(params, project=project)
        request = ExportRequest(
            project, "trl", "all_pairs", "jsonl", cleaned, earlier_prompt_ids(None)
        )
        return rows_estimate(request)

    human = estimate()
    assert estimate(source="ai", judge_endpoint=judge.pk) == 4 * 3  # judged, prompt filters
    assert estimate(source="both", judge_endpoint=judge.pk) == human + 4 * 3
