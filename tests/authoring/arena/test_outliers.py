"""Outlier voters: the z statistic against a plain-Python Davidson reference on random data,
and the flag raised through the agreement run for a rater who votes against the crowd."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from django.db import transaction

from authoring.arena import outliers
from authoring.arena.models import Battle, Turn
from authoring.arena.quality import arena_outliers_flag
from authoring.arena.services import battles, turns
from rankings.models import AgreementRun, Flag, FlagCode, FlagStatus
from rankings.runs.services import agreement_run_request


def _reference_probabilities(difference: float, nu: float) -> tuple[float, float, float]:
    """Davidson (1970) from its definition: pi_i / (pi_i + pi_j + nu sqrt(pi_i pi_j))."""
    first, second = math.exp(difference), 1.0
    tie = nu * math.sqrt(first * second)
    total = first + second + tie
    return first / total, second / total, tie / total


def test_z_scores_match_a_plain_reference_on_random_data():
    rng = np.random.default_rng(3)
    n, raters, nu = 400, 7, 0.6
    rater = rng.integers(0, raters, n)
    difference = rng.normal(0, 1.5, n)
    outcome = rng.integers(0, 3, n)
    fits = outliers.voter_fits(rater, difference, outcome, math.log(nu), raters)
    for r in range(raters):
        chosen = expected = variance = 0.0
        count = 0
        for i in range(n):
            if rater[i] != r:
                continue
            p = _reference_probabilities(float(difference[i]), nu)
            chosen += p[outcome[i]]
            mean = sum(q * q for q in p)
            expected += mean
            variance += sum(q * (q - mean) ** 2 for q in p)
            count += 1
        assert fits[r].votes == count
        assert fits[r].agreement == pytest.approx(chosen / count)
        assert fits[r].expected == pytest.approx(expected / count)
        assert fits[r].z == pytest.approx((chosen - expected) / math.sqrt(variance))


def test_honest_raters_pass_and_a_contrarian_is_an_outlier_in_simulation():
    rng = np.random.default_rng(11)
    strength = np.array([1.2, 0.4, -0.3, -1.3])
    nu = 0.4
    rows = []
    for rater in range(12):
        for _ in range(60):
            first, second = rng.choice(4, size=2, replace=False)
            p = _reference_probabilities(strength[first] - strength[second], nu)
            outcome = int(rng.choice(3, p=p))
            if rater == 11 and outcome != 2:
                outcome = 1 - outcome  # votes for the weaker model
            rows.append((rater, strength[first] - strength[second], outcome))
    raters, differences, outcomes = (np.array(column) for column in zip(*rows, strict=True))
    fits = outliers.voter_fits(raters, differences, outcomes, math.log(nu), 12)
    median = outliers.crowd_median(fits, min_votes=1)
    flagged = [
        r for r, fit in enumerate(fits)
        if outliers.is_outlier(fit, median=median, min_votes=20, z_threshold=3.0)
    ]  # fmt: skip
    assert flagged == [11]
    # Under the null the z scores are about standard normal.
    honest = np.array([fit.z for fit in fits[:11]])
    assert abs(honest.mean()) < 1.0 and 0.4 < honest.std() < 1.8


def test_too_few_votes_never_flag():
    fit = outliers.VoterFit(votes=5, agreement=0.1, expected=0.5, z=-9.0)
    assert not outliers.is_outlier(fit, median=0.5, min_votes=20, z_threshold=3.0)
    assert outliers.is_outlier(
        outliers.VoterFit(votes=20, agreement=0.1, expected=0.5, z=-9.0),
        median=0.5, min_votes=20, z_threshold=3.0,
    )  # fmt: skip


def _quick_vote(project, rater, choice_for) -> None:
    """A battle of one turn whose replies are taken as arrived (no model call), then a vote."""
    battle = battles.battle_start(project=project, rater=rater)
    turn = turns.turn_create(battle_id=battle.pk, rater=rater, content="q")
    Turn.objects.filter(pk=turn.pk).update(state_a="done", state_b="done")
    turns.turn_vote(battle_id=battle.pk, number=1, rater=rater, choice=choice_for(battle))


@pytest.fixture
def crowd_and_contrarian(make_arena, make_user, add_member):
    project = make_arena(endpoints=3, daily_cap=None, outlier_min_votes=20)
    order = {"model-0": 0, "model-1": 1, "model-2": 2}  # model-0 strongest
    rng = random.Random(5)

    def honest(battle: Battle) -> str:
        better = "a" if order[battle.model_a] < order[battle.model_b] else "b"
        return better if rng.random() < 0.85 else ("b" if better == "a" else "a")

    def contrarian(battle: Battle) -> str:
        return "b" if order[battle.model_a] < order[battle.model_b] else "a"

    crowd = [add_member(make_user(f"h{i}"), target=project) for i in range(5)]
    odd = add_member(make_user("odd"), target=project)
    for rater in crowd:
        for _ in range(24):
            _quick_vote(project, rater, honest)
    for _ in range(24):
        _quick_vote(project, odd, contrarian)
    return project, crowd, odd


def test_the_contrarian_is_flagged_with_evidence_and_the_crowd_is_not(
    crowd_and_contrarian, client, api_for, lead
):
    project, _crowd, odd = crowd_and_contrarian
    summary = arena_outliers_flag(project=project)
    assert summary == {"votes": 144, "raters": 6, "outliers": 1}
    flag = Flag.objects.get(project=project, code=FlagCode.ARENA_OUTLIER)
    assert flag.rater == odd and flag.status == FlagStatus.OPEN
    assert flag.evidence["votes"] == 24 and flag.evidence["z"] < -3
    assert flag.evidence["agreement"] < flag.evidence["crowd_median_agreement"]
    # Leads see it where they see every flag: the quality page and the raters API.
    client.force_login(lead)
    page = client.get(f"/rate/{project.pk}/quality/")
    assert page.status_code == 200
    assert b"ARENA_OUTLIER" in page.content and b"at odds with the leaderboard" in page.content
    raters = api_for(lead).get(f"/api/projects/{project.pk}/raters/").json()
    rows = raters["results"] if isinstance(raters, dict) else raters
    odd_row = next(row for row in rows if row["username"] == "odd")
    assert [flag["code"] for flag in odd_row["flags"]] == ["ARENA_OUTLIER"]
    # A dismissed flag stays dismissed until the rater has twice the evidence.
    Flag.objects.filter(pk=flag.pk).update(status=FlagStatus.DISMISSED)
    arena_outliers_flag(project=project)
    assert not Flag.objects.filter(project=project, status=FlagStatus.OPEN).exists()


def test_the_agreement_run_judges_arena_voters(
    crowd_and_contrarian, django_capture_on_commit_callbacks
):
    project, _crowd, odd = crowd_and_contrarian
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        agreement_run_request(project=project, trigger="manual")
    run = AgreementRun.objects.filter(project=project).latest("id")
    assert run.status == "done", run.error
    assert run.metrics["extensions"]["arena"]["outliers"] == 1
    assert Flag.objects.get(code=FlagCode.ARENA_OUTLIER).rater == odd
