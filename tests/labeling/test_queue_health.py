"""Queue health on the project page: prompt states, throughput, live leases, time to finish,
each rater's work today; a lead releases a stuck lease and the prompt is served again."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labeling import selectors, services
from labeling.models import Assignment, AssignmentStatus, AuditEvent, Prompt
from rankings.rating.services import ranking_submit
from tests.helpers import response_ids

pytestmark = pytest.mark.django_db


def rank(project, rater) -> Assignment:
    assignment = services.lease_next_assignment(project=project, rater=rater)
    assert assignment is not None
    ranking_submit(
        assignment_id=assignment.pk,
        rater=rater,
        ranking=[[response_id] for response_id in assignment.shown_order],
    )
    return assignment


def brute_force_states(project, now):
    """Count each prompt's state by looking at it alone (the reference for the selector)."""
    states = {"complete": 0, "in_progress": 0, "untouched": 0}
    for prompt in Prompt.objects.filter(project=project, is_gold=False, archived_at=None):
        if prompt.is_complete:
            states["complete"] += 1
            continue
        holding = [
            a
            for a in prompt.assignments.filter(is_repeat=False)
            if a.status == AssignmentStatus.SUBMITTED
            or (a.status == AssignmentStatus.LEASED and (a.expires_at > now or a.finished_at))
        ]
        states["in_progress" if holding else "untouched"] += 1
    return states


def test_states_throughput_and_raters_today_match_a_brute_force_count(
    imported, rater, rater2, make_user, add_member
):
    third = add_member(make_user("third"))
    for _ in range(2):
        rank(imported, rater)
        rank(imported, rater2)
    old = rank(imported, third)
    Assignment.objects.filter(pk=old.pk).update(
        leased_at=timezone.now() - timedelta(hours=3),
        finished_at=timezone.now() - timedelta(hours=2),
    )
    old.refresh_from_db()
    assert old.finished_at is not None
    leased = services.lease_next_assignment(project=imported, rater=third)
    assert leased is not None
    now = timezone.now()
    health = selectors.queue_health(project=imported, now=now)
    expected = brute_force_states(imported, now)
    assert {key: health[key] for key in expected} == expected
    assert health["complete"] == 2 and health["prompts"] == 5
    assert health["per_hour_last_hour"] == 4
    assert health["per_hour_last_day"] == round(5 / 24, 1)
    assert health["live_lease_count"] == 1
    assert [lease.pk for lease in health["live_leases"]] == [leased.pk]
    submitted = Assignment.objects.filter(project=imported, status="submitted", is_repeat=False)
    assert health["rankings_remaining"] == 5 * imported.overlap - submitted.count()
    assert health["hours_to_finish"] == round(health["rankings_remaining"] / 4, 1)
    today = {row["username"]: row["submitted"] for row in health["raters_today"]}
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    assert today["rater1"] == 2 and today["rater2"] == 2
    assert today.get("third", 0) == (1 if old.finished_at >= midnight else 0)


def test_the_pace_falls_back_to_the_day_and_nothing_left_means_done(imported, rater):
    done = rank(imported, rater)
    Assignment.objects.filter(pk=done.pk).update(
        leased_at=timezone.now() - timedelta(hours=6),
        finished_at=timezone.now() - timedelta(hours=5),
    )
    health = selectors.queue_health(project=imported)
    assert health["per_hour_last_hour"] == 0
    assert health["hours_to_finish"] == round(9 / (1 / 24), 1)
    empty = selectors.queue_health(project=imported, now=timezone.now() + timedelta(days=2))
    assert empty["hours_to_finish"] is None and empty["per_hour_last_day"] == 0


def test_queue_health_takes_the_same_number_of_queries_for_more_raters(
    imported, make_crowd, django_assert_max_num_queries
):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            selectors.queue_health(project=imported)
        return len(captured)

    crowd = make_crowd(4)
    rank(imported, crowd[0])
    few = queries()
    for rater in crowd[1:]:
        rank(imported, rater)
        services.lease_next_assignment(project=imported, rater=rater)
    assert queries() == few == 6


def test_releasing_a_stuck_lease_serves_the_prompt_to_the_next_rater(
    project, lead, rater, rater2, make_user, add_member
):
    from tests.helpers import import_prompts, sample_records

    services.project_update(project=project, overlap=1)
    (prompt,) = import_prompts(project, sample_records(1))
    stuck = services.lease_next_assignment(project=project, rater=rater)
    assert stuck is not None and stuck.prompt_id == prompt.pk
    assert services.lease_next_assignment(project=project, rater=rater2) is None
    services.lease_release(project=project, assignment_id=stuck.pk, by=lead)
    again = services.lease_next_assignment(project=project, rater=rater2)
    assert again is not None and again.prompt_id == prompt.pk
    event = AuditEvent.objects.get(project=project, action="lease.release")
    assert event.actor == lead and event.target == rater.username
    assert event.changes["prompt"] == prompt.pk
    assert response_ids(prompt)  # the prompt and its responses are untouched


def test_releasing_from_the_page_answers_the_queue_fragment(imported, lead, rater):
    lease = services.lease_next_assignment(project=imported, rater=rater)
    assert lease is not None
    client = Client()
    client.force_login(lead)
    page = client.get(f"/projects/{imported.pk}/").content.decode()
    assert f'data-lease="{lease.pk}"' in page
    url = f"/projects/{imported.pk}/leases/{lease.pk}/release/"
    done = client.post(url, HTTP_HX_REQUEST="true")
    assert done.status_code == 200
    html = done.content.decode()
    assert "Released" in html and f'data-lease="{lease.pk}"' not in html
    again = client.post(url, HTTP_HX_REQUEST="true")
    assert again.status_code == 400
    assert "already ended" in again.content.decode()
    assert "Released" not in again.content.decode()


def test_only_leads_release_leases_and_only_in_their_project(
    imported, rater, rater2, lead, make_user
):
    lease = services.lease_next_assignment(project=imported, rater=rater)
    assert lease is not None
    client = Client()
    client.force_login(rater2)
    assert client.post(f"/projects/{imported.pk}/leases/{lease.pk}/release/").status_code == 403
    other = services.project_create(creator=lead, name="Other")
    client.force_login(lead)
    answer = client.post(f"/projects/{other.pk}/leases/{lease.pk}/release/", HTTP_HX_REQUEST="true")
    assert answer.status_code == 400 and "no such lease" in answer.content.decode()
    assert Assignment.objects.get(pk=lease.pk).expires_at > timezone.now()


def test_the_queue_api_reports_health_and_releases_leases(imported, lead, rater, engineer, api_for):
    lease = services.lease_next_assignment(project=imported, rater=rater)
    assert lease is not None
    health = api_for(engineer).get(f"/api/projects/{imported.pk}/queue/")
    assert health.status_code == 200
    body = health.json()
    assert body["untouched"] == 4 and body["in_progress"] == 1 and body["complete"] == 0
    assert body["live_leases"][0]["assignment_id"] == lease.pk
    assert body["live_leases"][0]["rater"] == rater.username
    url = f"/api/projects/{imported.pk}/leases/{lease.pk}/release/"
    assert api_for(engineer).post(url).status_code == 403
    assert api_for(rater).post(url).status_code == 403
    released = api_for(lead).post(url)
    assert released.status_code == 200 and released.json()["assignment_id"] == lease.pk
    again = api_for(lead).post(url)
    assert again.status_code == 409 and again.json()["code"] == "lease_not_live"
    missing = api_for(lead).post(f"/api/projects/{imported.pk}/leases/999999/release/")
    assert missing.status_code == 404 and missing.json()["field"] == "assignment"
    assert api_for(lead).get(f"/api/projects/{imported.pk}/queue/").json()["live_lease_count"] == 0


def test_the_queue_section_reloads_after_settings_and_member_changes(imported, lead, rater):
    client = Client()
    client.force_login(lead)
    section = client.get(f"/projects/{imported.pk}/queue/")
    assert section.status_code == 200 and 'id="queue"' in section.content.decode()
    assert 'hx-trigger="queue-changed from:body"' in section.content.decode()
    paused = client.post(
        f"/projects/{imported.pk}/members/{rater.username}/",
        {"action": "pause"},
        HTTP_HX_REQUEST="true",
    )
    assert "queue-changed" in json.loads(paused.headers["HX-Trigger"])
    other = Client()
    other.force_login(rater)
    assert other.get(f"/projects/{imported.pk}/queue/").status_code == 403
