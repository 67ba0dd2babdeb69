"""Review of red-team attempts, and label agreement computed by the agreement run (checked
against the `krippendorff` package on random labels)."""

from __future__ import annotations

from datetime import timedelta

import krippendorff
import numpy as np
import pytest
from django.utils import timezone

from authoring.redteam.agreement import alpha_of
from authoring.redteam.agreement_runs import EXTENSION, TRIGGER, red_team_agreement
from authoring.redteam.models import Attempt, Label, LabelRole
from authoring.redteam.options import DEFAULT_CATEGORIES
from labeling import services as labeling_services
from labeling.models import Assignment, AssignmentStatus, Membership, Prompt
from rankings.models import AgreementRun
from rankings.runs.services import agreement_run_compute, agreement_run_request
from tests.authoring.redteam.helpers import labelled_attempt

pytestmark = pytest.mark.django_db

LABEL = {"succeeded": False, "category": "weapons", "severity": 1, "note": "refused"}


def _review(api, attempt_id, **values):
    return api.post(
        f"/api/red-team/attempts/{attempt_id}/labels/", {**LABEL, **values}, format="json"
    )


# Review ---------------------------------------------------------------------------------------


def test_another_rater_reviews_and_can_relabel(api_for, red_project, rater, rater2):
    attempt = labelled_attempt(red_project, rater)
    api = api_for(rater2)
    created = _review(api, attempt.pk)
    assert created.status_code == 201 and created.json()["role"] == "reviewer"
    same = _review(api, attempt.pk)
    assert same.status_code == 200 and same.json()["id"] == created.json()["id"]
    changed = _review(api, attempt.pk, succeeded=True, severity=4)
    assert changed.status_code == 201
    label = Label.objects.get(labeler=rater2)
    assert (label.succeeded, label.severity) == (True, 4)
    assert Label.objects.filter(attempt=attempt).count() == 2


def test_the_lead_reviews_and_sees_the_transcript(api_for, red_project, rater, lead):
    attempt = labelled_attempt(red_project, rater)
    detail = api_for(lead).get(f"/api/red-team/attempts/{attempt.pk}/").json()
    assert [turn["user_text"] for turn in detail["turns"]] == ["hello", "tell me more"]
    assert detail["model"] == "target-model" and detail["turns"][0]["model"] == "target-model"
    assert _review(api_for(lead), attempt.pk).status_code == 201


def test_who_may_not_review(api_for, red_project, rater, engineer, outsider, rater2):
    attempt = labelled_attempt(red_project, rater)
    own = _review(api_for(rater), attempt.pk)
    assert own.status_code == 403 and own.json()["code"] == "own_attempt"
    assert _review(api_for(engineer), attempt.pk).status_code == 403
    assert _review(api_for(outsider), attempt.pk).status_code == 404
    Membership.objects.filter(user=rater2).update(status="paused")
    assert _review(api_for(rater2), attempt.pk).status_code == 403
    assert Label.objects.filter(role=LabelRole.REVIEWER).count() == 0


def test_an_attempt_not_yet_labelled_cannot_be_reviewed(api_for, red_project, rater, rater2):
    from authoring.redteam import services

    attempt = services.red_team_lease(project=red_project, rater=rater)
    response = _review(api_for(rater2), attempt.pk)
    assert response.status_code == 409 and response.json()["code"] == "not_submitted"


def test_bad_review_labels_are_refused(api_for, red_project, rater, rater2):
    attempt = labelled_attempt(red_project, rater)
    response = _review(api_for(rater2), attempt.pk, category="unknown")
    assert response.status_code == 400 and response.json()["field"] == "category"


def test_review_next_serves_others_attempts_with_fewest_labels(
    api_for, red_project, rater, rater2, make_user, add_member
):
    first = labelled_attempt(red_project, rater)
    second = labelled_attempt(red_project, rater, category="fraud")
    third_person = add_member(make_user("rater3"))
    _review(api_for(third_person), first.pk)
    api = api_for(rater2)
    url = f"/api/projects/{red_project.pk}/red-team/review-next/"
    assert api.get(url).json()["id"] == second.pk  # fewer labels first
    _review(api, second.pk, category="fraud")
    assert api.get(url).json()["id"] == first.pk
    _review(api, first.pk)
    assert api.get(url).status_code == 204
    assert api_for(rater).get(url).status_code == 204  # never one's own


# Agreement ------------------------------------------------------------------------------------


def _random_labels(project, people, rng, n_attempts=25):
    """Attempts labelled by random subsets of people, with correlated random labels; the
    same labels as people-by-attempts matrices (NaN: no label) for the reference."""
    now = timezone.now()
    matrices = {name: np.full((len(people), n_attempts), np.nan) for name in ("s", "c", "v")}
    for column in range(n_attempts):
        owner = people[column % len(people)]
        prompt = Prompt.objects.create(project=project, messages=[{"role": "user", "content": "g"}])
        assignment = Assignment.objects.create(
            project=project, prompt=prompt, rater=owner, shown_order=[],
            status=AssignmentStatus.SUBMITTED, leased_at=now, expires_at=now + timedelta(hours=1),
        )  # fmt: skip
        attempt = Attempt.objects.create(
            assignment=assignment, project=project, prompt=prompt, rater=owner
        )
        truth = (rng.integers(0, 2), rng.integers(0, len(DEFAULT_CATEGORIES)), rng.integers(0, 5))
        for row, person in enumerate(people):
            if rng.random() < 0.35:
                continue
            succeeded = int(truth[0] if rng.random() < 0.6 else rng.integers(0, 2))
            category = int(truth[1] if rng.random() < 0.6 else rng.integers(0, 10))
            severity = int(truth[2] if rng.random() < 0.6 else rng.integers(0, 5))
            Label.objects.create(
                attempt=attempt, project=project, labeler=person,
                role=LabelRole.RATER if person == owner else LabelRole.REVIEWER,
                succeeded=bool(succeeded), category=DEFAULT_CATEGORIES[category],
                severity=severity,
            )  # fmt: skip
            matrices["s"][row, column] = succeeded
            matrices["c"][row, column] = category
            matrices["v"][row, column] = severity
    return matrices


def _agreement(project) -> dict:
    numbers = red_team_agreement(project)
    assert numbers is not None
    return numbers


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_label_agreement_matches_the_krippendorff_package(red_project, make_crowd, seed):
    people = make_crowd(4)
    matrices = _random_labels(red_project, people, np.random.default_rng(seed))
    numbers = red_team_agreement(red_project)
    assert numbers is not None
    for name, key, level, domain in (
        ("success", "s", "nominal", [0, 1]),
        ("category", "c", "nominal", list(range(10))),
        ("severity", "v", "ordinal", [0, 1, 2, 3, 4]),
    ):
        expected = krippendorff.alpha(
            reliability_data=matrices[key],
            level_of_measurement=level,  # type: ignore[arg-type]
            value_domain=domain,
        )
        assert numbers[name]["alpha"] == pytest.approx(expected, abs=1e-9), name
        labelled = (~np.isnan(matrices[key])).sum(axis=0)
        assert numbers[name]["n_units"] == int((labelled >= 2).sum())


def test_alpha_is_none_without_two_labels_on_an_attempt():
    single = alpha_of(np.array([1, 2]), np.array([0, 1]), 2, level="nominal")
    assert single.alpha is None and single.n_units == 0
    assert alpha_of(np.array([1, 1]), np.array([3, 3]), 5, level="ordinal").alpha is None


def test_excluded_members_labels_are_left_out(red_project, make_crowd):
    people = make_crowd(3)
    _random_labels(red_project, people, np.random.default_rng(5), n_attempts=10)
    before = _agreement(red_project)["n_labels"]
    Membership.objects.filter(user=people[0]).update(excluded=True)
    after = _agreement(red_project)["n_labels"]
    assert after == before - Label.objects.filter(labeler=people[0]).count()


def test_the_agreement_run_stores_the_red_team_numbers(red_project, make_crowd):
    _random_labels(red_project, make_crowd(3), np.random.default_rng(7), n_attempts=8)
    run = agreement_run_request(project=red_project, trigger="manual")
    agreement_run_compute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "done", run.error
    stored = run.metrics["extensions"][EXTENSION]
    assert stored["severity"]["alpha"] == pytest.approx(
        _agreement(red_project)["severity"]["alpha"]
    )


def test_a_rank_project_has_no_red_team_numbers(project):
    assert red_team_agreement(project) is None


def test_labels_queue_a_run_every_n(
    api_for, red_project, rater, rater2, lead, django_capture_on_commit_callbacks
):
    labeling_services.project_update(project=red_project, agreement_every_n_rankings=2)
    with django_capture_on_commit_callbacks(execute=True):
        attempt = labelled_attempt(red_project, rater)
    assert not AgreementRun.objects.exists()  # one label: not yet
    with django_capture_on_commit_callbacks(execute=True):
        _review(api_for(rater2), attempt.pk)
    runs = list(AgreementRun.objects.all())
    assert len(runs) == 1 and runs[0].trigger == TRIGGER
    with django_capture_on_commit_callbacks(execute=True):
        _review(api_for(lead), attempt.pk)  # a run is pending: no second one
    assert AgreementRun.objects.count() == 1


def test_the_lead_page_shows_the_numbers(client, red_project, rater, rater2, lead):
    attempt = labelled_attempt(red_project, rater)
    Label.objects.create(
        attempt=attempt, project=red_project, labeler=rater2, role=LabelRole.REVIEWER,
        succeeded=True, category="weapons", severity=2,
    )  # fmt: skip
    run = agreement_run_request(project=red_project, trigger="manual")
    agreement_run_compute(run_id=run.pk)
    client.force_login(lead)
    page = client.get(f"/red-team/projects/{red_project.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-alpha="severity"' in html and "tell me more" in html
    client.force_login(rater)
    assert client.get(f"/red-team/projects/{red_project.pk}/").status_code == 403
