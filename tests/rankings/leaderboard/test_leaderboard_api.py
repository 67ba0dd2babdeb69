"""``GET /api/projects/{id}/leaderboard/``: who may read it, its options, and that it reads
the rankings in the database the way the maths expects (on both databases)."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection

from labeling.models import Prompt
from rankings.leaderboard import selectors
from rankings.leaderboard.selectors import Source
from rankings.stats.leaderboard import model_leaderboard
from tests.helpers import import_prompts
from tests.rankings.leaderboard.helpers import (
    MODELS,
    exclude,
    leaderboard_records,
    model_order_groups,
    rank_by_quality,
)
from tests.rankings.quality_helpers import done_run, make_ranking, score

pytestmark = pytest.mark.django_db


def url(project) -> str:
    return f"/api/projects/{project.pk}/leaderboard/"


@pytest.fixture
def ranked(project, make_crowd):
    prompts = import_prompts(project, leaderboard_records(24))
    crowd = make_crowd(3)
    rank_by_quality(project, crowd, prompts)
    return project, crowd, prompts


def test_the_lead_sees_the_models_in_order_of_quality(ranked, lead, api_for) -> None:
    project, _, prompts = ranked
    response = api_for(lead).get(url(project))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert [row["name"] for row in body["models"]] == list(MODELS)
    assert [row["rank"] for row in body["models"]] == [1, 2, 3]
    assert body["source"] == "rankings"
    assert body["n_prompts"] == len(prompts)
    assert body["n_rankings"] == 3 * len(prompts)
    assert body["length_controlled"] is False
    assert body["length_effect"] is None
    for row in body["models"]:
        low, high = row["interval"]
        assert low <= row["strength"] <= high
        # Each prompt has one response per model: two comparisons per model per prompt.
        assert row["comparisons"] == pytest.approx(2 * len(prompts))
        assert row["wins"] + row["ties"] + row["losses"] == pytest.approx(row["comparisons"])
    assert body["models"][0]["interval"][0] > body["models"][2]["interval"][1]
    matrix = body["win_rate"]
    assert matrix[0][0] is None
    assert matrix[0][2] > 0.5 and matrix[2][0] == pytest.approx(1 - matrix[0][2])
    assert body["pair_comparisons"][0][1] == pytest.approx(len(prompts))


def test_wins_are_counted_from_the_stored_rankings(project, make_crowd, lead, api_for) -> None:
    prompts = import_prompts(project, leaderboard_records(2))
    first, second = make_crowd(2)
    # Prompt 0: both raters put gamma first. Prompt 1: one rater, alpha > beta = gamma.
    for rater in (first, second):
        make_ranking(
            project,
            prompts[0],
            rater,
            groups=model_order_groups(prompts[0], ("gamma", "alpha", "beta")),
        )
    by_model = dict(prompts[1].responses.values_list("model_name", "id"))
    make_ranking(
        project,
        prompts[1],
        first,
        groups=[[by_model["alpha"]], [by_model["beta"], by_model["gamma"]]],
    )
    body = api_for(lead).get(url(project)).json()
    rows = {row["name"]: row for row in body["models"]}
    assert rows["gamma"]["wins"] == pytest.approx(2)
    assert rows["gamma"]["ties"] == pytest.approx(1)
    assert rows["gamma"]["losses"] == pytest.approx(1)
    assert rows["alpha"]["wins"] == pytest.approx(3)
    assert rows["beta"]["losses"] == pytest.approx(3)


def test_an_engineer_may_read_it_a_rater_may_not_an_outsider_does_not_see_it(
    ranked, engineer, rater, outsider, api_for, client
) -> None:
    project = ranked[0]
    assert api_for(engineer).get(url(project)).status_code == 200
    refused = api_for(rater).get(url(project))
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    assert api_for(outsider).get(url(project)).status_code == 404
    assert client.get(url(project)).status_code in (401, 403)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("source=everything", "source"),
        ("include_excluded=perhaps", "include_excluded"),
        ("length_control=2", "length_control"),
        ("lenght_control=true", "lenght_control"),
    ],
)
def test_bad_options_are_refused_naming_the_field(
    ranked, lead, api_for, query: str, field: str
) -> None:
    response = api_for(lead).get(f"{url(ranked[0])}?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == field
    assert body["code"] == "invalid"


def test_excluded_raters_are_left_out_unless_asked_for(
    ranked, lead, api_for, make_user, add_member
) -> None:
    project, _, prompts = ranked
    # A contrarian ranks everything worst-first, twice as often as the crowd: with their
    # rankings counted, gamma climbs.
    contrarians = [add_member(make_user(f"contrarian{index}")) for index in range(6)]
    for contrarian in contrarians:
        for prompt in prompts:
            make_ranking(
                project, prompt, contrarian, groups=model_order_groups(prompt, MODELS[::-1])
            )
        exclude(project, contrarian)
    client = api_for(lead)
    without = client.get(url(project)).json()
    assert without["n_rankings"] == 3 * len(prompts)
    assert [row["name"] for row in without["models"]] == list(MODELS)
    including = client.get(f"{url(project)}?include_excluded=true").json()
    assert including["include_excluded"] is True
    assert including["n_rankings"] == 9 * len(prompts)
    assert [row["name"] for row in including["models"]] == list(MODELS[::-1])


def test_the_consensus_counts_one_ranking_per_prompt(ranked, lead, api_for) -> None:
    project, _, prompts = ranked
    body = api_for(lead).get(f"{url(project)}?source=consensus").json()
    assert body["source"] == "consensus"
    assert body["n_rankings"] == len(prompts)
    assert [row["name"] for row in body["models"]] == list(MODELS)
    for row in body["models"]:
        assert row["wins"] + row["ties"] + row["losses"] == pytest.approx(2 * len(prompts))


def test_length_control_reports_the_length_effect(ranked, lead, api_for) -> None:
    body = api_for(lead).get(f"{url(ranked[0])}?length_control=true").json()
    assert body["length_controlled"] is True
    assert isinstance(body["length_effect"], float)
    low, high = body["length_effect_interval"]
    assert low <= body["length_effect"] <= high
    assert all(row["interval"] is not None for row in body["models"])


def test_gold_prompts_repeats_and_unnamed_models_take_no_part(ranked, lead, api_for) -> None:
    project, crowd, prompts = ranked
    before = api_for(lead).get(url(project)).json()
    # Repeats of the reverse order, a gold prompt ranked in reverse, an unnamed model.
    for prompt in prompts[:5]:
        make_ranking(
            project,
            prompt,
            crowd[0],
            groups=model_order_groups(prompt, MODELS[::-1]),
            is_repeat=True,
        )
    gold = import_prompts(project, leaderboard_records(1, seed=9, prefix="gold"))[-1]
    reverse = model_order_groups(gold, MODELS[::-1])
    Prompt.objects.filter(pk=gold.pk).update(is_gold=True, gold_ranking=reverse)
    for rater in crowd:
        make_ranking(project, gold, rater, groups=model_order_groups(gold, MODELS[::-1]))
    unnamed = import_prompts(project, leaderboard_records(1, seed=10, prefix="unnamed"))[-1]
    unnamed.responses.update(model_name="")
    for rater in crowd:
        make_ranking(project, unnamed, rater)  # in import order
    after = api_for(lead).get(url(project)).json()
    assert after["models"] == before["models"]
    assert after["n_prompts"] == before["n_prompts"]


def test_a_project_without_rankings_has_an_empty_board(project, lead, api_for) -> None:
    import_prompts(project, leaderboard_records(3))
    body = api_for(lead).get(url(project)).json()
    assert body["models"] == []
    assert body["n_prompts"] == 0
    assert body["win_rate"] == []


def test_queries_do_not_grow_with_the_number_of_prompts(
    project, make_crowd, lead, api_for, django_assert_max_num_queries
) -> None:
    crowd = make_crowd(2)
    rank_by_quality(project, crowd, import_prompts(project, leaderboard_records(40)))
    client = api_for(lead)
    with django_assert_max_num_queries(16):
        assert client.get(url(project)).status_code == 200


@pytest.mark.postgresql("the fast path reads with PostgreSQL's own SQL")
def test_the_postgresql_fast_path_reads_what_the_portable_path_reads(ranked) -> None:
    assert connection.vendor == "postgresql"
    project = ranked[0]
    for source in Source:
        fast = selectors.leaderboard_input(project=project, source=source, include_excluded=False)
        portable = selectors.leaderboard_input(
            project=project, source=source, include_excluded=False, portable=True
        )
        assert fast.model_names == portable.model_names
        assert np.array_equal(fast.model_index, portable.model_index)
        assert np.array_equal(fast.table.ranks, portable.table.ranks, equal_nan=True)
        assert np.array_equal(fast.response_length, portable.response_length, equal_nan=True)
        boards = [
            model_leaderboard(loaded.table, loaded.model_index, loaded.model_names, resamples=20)
            for loaded in (fast, portable)
        ]
        assert boards[0] == boards[1]


def test_a_cached_board_is_recomputed_when_the_rankings_or_exclusions_change(
    ranked, lead, api_for, make_user, add_member
) -> None:
    project, _, prompts = ranked
    client = api_for(lead)
    first = client.get(url(project)).json()
    assert client.get(url(project)).json() == first  # served again, unchanged
    newcomer = add_member(make_user("newcomer"))
    for prompt in prompts:
        make_ranking(project, prompt, newcomer, groups=model_order_groups(prompt, MODELS[::-1]))
    with_newcomer = client.get(url(project)).json()
    assert with_newcomer["n_rankings"] == first["n_rankings"] + len(prompts)
    exclude(project, newcomer)
    assert client.get(url(project)).json()["n_rankings"] == first["n_rankings"]


def test_the_consensus_weighs_raters_by_the_latest_runs_reliability(
    ranked, lead, api_for, make_user, add_member
) -> None:
    project, crowd, prompts = ranked
    # Two contrarians against three careful raters: unweighted, the consensus of a prompt
    # follows the majority; with the careful raters weighing almost nothing it flips.
    contrarians = [add_member(make_user(f"contrarian{index}")) for index in range(2)]
    for contrarian in contrarians:
        for prompt in prompts:
            make_ranking(
                project, prompt, contrarian, groups=model_order_groups(prompt, MODELS[::-1])
            )
    client = api_for(lead)
    before = client.get(f"{url(project)}?source=consensus").json()
    assert [row["name"] for row in before["models"]] == list(MODELS)
    run = done_run(project)
    for rater in crowd:
        score(run, rater, reliability_weight=0.05)
    for contrarian in contrarians:
        score(run, contrarian, reliability_weight=1.0)
    after = client.get(f"{url(project)}?source=consensus").json()
    assert [row["name"] for row in after["models"]] == list(MODELS[::-1])
