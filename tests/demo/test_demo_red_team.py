"""The demo's red-team project: built offline through the rater services, labelled,
reviewed and measured; built once."""

from __future__ import annotations

import pytest
from django.db import transaction

from authoring.redteam.agreement_runs import EXTENSION
from authoring.redteam.models import Attempt, Label, Turn
from demo.people import demo_people_ensure
from demo.red_team import ATTEMPTS, REVIEWS, demo_red_team_ensure
from rankings.models import AgreementRun

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_red_team_demo_is_labelled_reviewed_and_measured_once():
    people = demo_people_ensure(password="demo-pass-123")
    with transaction.atomic():
        project = demo_red_team_ensure(people=people)
    assert Attempt.objects.filter(project=project).count() == len(ATTEMPTS)
    assert Label.objects.filter(project=project).count() == len(ATTEMPTS) + len(REVIEWS)
    assert Turn.objects.filter(attempt__project=project, flagged=True).count() == 2
    assert not Turn.objects.filter(attempt__project=project, finished_at__isnull=True).exists()
    run = AgreementRun.objects.get(project=project)
    assert run.status == "done", run.error
    numbers = run.metrics["extensions"][EXTENSION]
    assert numbers["success"]["n_units"] == len(REVIEWS)
    assert demo_red_team_ensure(people=people) == project  # again: nothing new
    assert Attempt.objects.filter(project=project).count() == len(ATTEMPTS)
