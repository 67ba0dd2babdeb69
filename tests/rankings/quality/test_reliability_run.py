"""The reliability model end to end: a simulated crowd's rankings stored, an agreement run,
then the competence in the score rows, the UNRELIABLE flags, the raters API and the page."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from core.jobs import JobStatus
from labeling import services as labeling_services
from labeling.models import Assignment, AssignmentStatus, Membership, Prompt, Role
from rankings.models import AgreementRun, Flag, FlagStatus, Ranking, RaterScore
from rankings.runs import maths, services
from rankings.runs.data import agreement_data
from rankings.stats.registry import RATER_STATISTICS, UNRELIABLE, rater_values
from tests.helpers import PASSWORD
from tests.rankings.agreement_helpers import eager_tasks
from tests.rankings.crowd import (
    FIRST_SHOWN_70,
    LONGEST_FIRST_70,
    SimulatedProject,
    careful,
    simulate,
)

pytestmark = pytest.mark.django_db

PROMPTS = 100
K = 4
CROWD = [careful(0.2 + 0.02 * index) for index in range(12)] + [FIRST_SHOWN_70, LONGEST_FIRST_70]
MODEL_COLUMNS = [stat for stat in RATER_STATISTICS if stat.source.startswith("model.")]


def store(project, simulated: SimulatedProject) -> list:
    """The simulated rankings as assignments and rankings of users rater0, rater1…"""
    table, context = simulated.data.table, simulated.data.context
    lengths, shown_slots, seconds = context.response_length, context.shown_slots, context.seconds
    assert lengths is not None and shown_slots is not None and seconds is not None
    records = [
        {
            "external_id": f"q{prompt}",
            "prompt": f"Question {prompt}",
            "responses": [{"text": "x" * int(length)} for length in lengths[prompt]],
        }
        for prompt in range(PROMPTS)
    ]
    labeling_services.prompts_import(project=project, raw=json.dumps(records))
    prompts = list(Prompt.objects.filter(project=project).order_by("id"))
    response_ids = [
        list(prompt.responses.order_by("position").values_list("id", flat=True))
        for prompt in prompts
    ]
    users = []
    for index in range(len(simulated.behaviours)):
        user = get_user_model().objects.create_user(username=f"rater{index}", password=PASSWORD)
        Membership.objects.create(project=project, user=user, role=Role.RATER)
        users.append(user)
    now = timezone.now()
    for row in range(table.n_rankings):
        prompt, rater = int(table.prompt_index[row]), int(table.rater_index[row])
        ids = response_ids[prompt]
        levels = table.ranks[row]
        groups = [
            [ids[slot] for slot in range(K) if levels[slot] == level]
            for level in sorted(set(levels.tolist()))
        ]
        assignment = Assignment.objects.create(
            project=project,
            prompt=prompts[prompt],
            rater=users[rater],
            status=AssignmentStatus.SUBMITTED,
            shown_order=[ids[int(slot)] for slot in shown_slots[row]],
            leased_at=now - timedelta(minutes=1),
            expires_at=now + timedelta(minutes=9),
            finished_at=now,
        )
        Ranking.objects.create(
            assignment=assignment,
            project=project,
            prompt=prompts[prompt],
            rater=users[rater],
            groups=groups,
            seconds=float(seconds[row]),
        )
    return users


@pytest.fixture
def reliability_run(lead, django_capture_on_commit_callbacks):
    project = labeling_services.project_create(
        creator=lead, name="Subtle crowd", overlap=4, allow_ties=True, agreement_every_n_rankings=0
    )
    simulated = simulate(CROWD, prompts=PROMPTS, seed=5)
    users = store(project, simulated)
    with eager_tasks(), django_capture_on_commit_callbacks(execute=True):
        services.agreement_run_request(project=project, trigger="manual")
    run = AgreementRun.objects.get(project=project)
    assert run.status == JobStatus.DONE, run.error
    return project, run, users


def test_the_run_stores_each_raters_competence_as_the_maths_computes_it(reliability_run):
    project, run, users = reliability_run
    expected = maths.agreement_maths(agreement_data(project=project, portable=True))
    by_user = dict(zip(expected_user_ids(project), expected.rater_results(), strict=True))
    scores = {score.rater_id: score for score in RaterScore.objects.filter(run=run)}
    assert len(scores) == len(users)
    for user_id, result in by_user.items():
        values = rater_values(result)
        for stat in MODEL_COLUMNS:
            stored = getattr(scores[user_id], stat.column)
            assert stored == pytest.approx(values[stat.name], abs=1e-9), stat.name
        score = scores[user_id]
        assert score.competence is not None
        assert score.competence_low is not None and score.competence_high is not None
        assert score.competence_low <= score.competence <= score.competence_high
        assert score.reliability_tasks == score.rankings
        # The consensus weighs raters by their competence.
        assert score.reliability_weight == pytest.approx(max(score.competence, 0.05))


def expected_user_ids(project) -> list[int]:
    return agreement_data(project=project, portable=True).rater_user_ids


def test_biased_raters_are_flagged_unreliable_with_what_the_test_saw(reliability_run):
    project, run, _ = reliability_run
    unreliable = {
        flag.rater.username: flag
        for flag in Flag.objects.filter(project=project, code=UNRELIABLE, status=FlagStatus.OPEN)
    }
    assert set(unreliable) == {"rater12", "rater13"}
    first_shown = unreliable["rater12"].evidence
    assert first_shown["what_the_test_saw"].startswith("picks the first-shown response")
    assert first_shown["reliability_evidence"] >= first_shown["threshold"]
    assert first_shown["max_false_flag_rate"] == 0.01
    assert first_shown["run_id"] == run.pk and first_shown["holds"] is True
    assert (
        unreliable["rater13"].evidence["what_the_test_saw"].startswith("picks the longer response")
    )
    assert "times as likely from a careless or biased rater" in first_shown["summary"]


def test_the_raters_api_says_how_sure_the_test_is(reliability_run, api_for, lead):
    project, _, _ = reliability_run
    response = api_for(lead).get(f"/api/projects/{project.pk}/raters/?sort=-competence")
    assert response.status_code == 200
    rows = {row["username"]: row for row in response.json()}
    for row in rows.values():
        assert 0 <= row["competence_low"] <= row["competence"] <= row["competence_high"] <= 1
        assert row["reliability_decision"] in {"flagged", "careful", "undecided"}
        assert row["tasks_to_decide"] is None or row["tasks_to_decide"] >= 0
    assert rows["rater12"]["reliability_decision"] == "flagged"
    assert rows["rater12"]["tasks_to_decide"] == 0
    competences = [row["competence"] for row in response.json()]
    assert competences == sorted(competences, reverse=True)


def test_the_quality_page_shows_competence_with_its_interval_and_decision(
    reliability_run, client, lead
):
    project, _, _ = reliability_run
    client.force_login(lead)
    page = client.get(reverse("rankings:quality", args=[project.pk])).content.decode()
    assert 'data-column="competence"' in page
    assert 'data-decision="flagged"' in page
    assert "decided: careless or biased" in page
    assert "evidence " in page
    assert np.any([f'data-decision="{state}"' in page for state in ("careful", "undecided")])
