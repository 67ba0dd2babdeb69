"""The agreement trigger after a submit is a counter: the database is asked whether a run is
due only every `agreement_every_n_rankings`-th submit, and a cache outage never fails one."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from labeling import services as labeling_services
from rankings.models import Ranking
from rankings.rating import services as rating_services

pytestmark = pytest.mark.django_db


def submit_next(project, rater) -> None:
    assignment = labeling_services.lease_next_assignment(project=project, rater=rater)
    assert assignment is not None
    rating_services.ranking_submit(
        assignment_id=assignment.pk,
        rater=rater,
        ranking=[[response_id] for response_id in assignment.shown_order],
    )


@pytest.fixture
def looks(monkeypatch) -> list[int]:
    """The projects the database was asked about, one entry per look."""
    asked: list[int] = []
    monkeypatch.setattr(
        rating_services, "agreement_run_request_if_due", lambda *, project: asked.append(project.pk)
    )
    return asked


def test_the_database_is_asked_only_every_nth_submit(
    imported, rater, rater2, looks, django_capture_on_commit_callbacks
):
    imported.agreement_every_n_rankings = 3
    imported.save()
    for user in (rater, rater2, rater, rater2, rater, rater2, rater):
        with django_capture_on_commit_callbacks(execute=True):
            submit_next(imported, user)
    assert looks == [imported.pk, imported.pk]  # after the 3rd and the 6th submit


def test_zero_never_asks(imported, rater, looks, django_capture_on_commit_callbacks):
    imported.agreement_every_n_rankings = 0
    imported.save()
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            submit_next(imported, rater)
    assert looks == []


def test_a_cache_outage_does_not_fail_the_submit(
    imported, rater, looks, monkeypatch, django_capture_on_commit_callbacks
):
    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "incr", broken)
    imported.agreement_every_n_rankings = 1
    imported.save()
    with django_capture_on_commit_callbacks(execute=True):
        submit_next(imported, rater)
    assert Ranking.objects.filter(rater=rater).count() == 1
    assert looks == []
