"""The rater's page: the task and the one preloaded, guidelines, paused, empty, queries."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from labeling import services as labeling_services
from labeling.models import Assignment, Membership, Response
from tests.rankings.rating.page_helpers import (
    EMPTY_QUEUE,
    JSON,
    action_url,
    current_task,
    live_assignments,
    pairwise_project,
    rank_fields,
    rate_url,
    set_project,
    shown_card_ids,
)

pytestmark = pytest.mark.django_db


# The page ---------------------------------------------------------------------------------------


def test_it_renders_the_task_and_preloads_the_next_one(rater_client, rater, imported):
    response = rater_client.get(rate_url(imported))
    assert response.status_code == 200
    html = response.content.decode()
    current, following = live_assignments(rater)
    assert current.prompt_id != following.prompt_id
    # Shown order is recorded per assignment and is the order of the cards on the page.
    assert shown_card_ids(html) == current.shown_order + following.shown_order
    page, preloaded = html.split('<template id="following-task">')
    assert f'data-assignment-id="{current.pk}"' in page
    assert f'data-assignment-id="{following.pk}"' in preloaded
    assert re.findall(r'data-label="([A-Z])"', page) == ["A", "B", "C"]
    texts = dict(Response.objects.values_list("id", "text"))
    positions = [page.index(texts[response_id]) for response_id in current.shown_order]
    assert positions == sorted(positions)
    assert "model-0" not in html and "model-1" not in html
    assert "ranklab/rank.js" in html


def test_it_gives_back_the_same_tasks_on_reload(rater_client, rater, imported):
    rater_client.get(rate_url(imported))
    first = live_assignments(rater)
    rater_client.get(rate_url(imported))
    assert live_assignments(rater) == first
    assert Assignment.objects.filter(rater=rater).count() == 2


def test_it_renders_markdown_and_escapes_script_and_event_handlers(rater_client, imported):
    Response.objects.filter(position=0).update(
        text="Try this: <script>alert(1)</script> and <img src=x onerror=alert(1)> **bold**"
        "\n\n```python\nprint('hi')\n```"
    )
    Response.objects.filter(position=1).update(text="[click](javascript:alert(1))")
    html = rater_client.get(rate_url(imported)).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not re.search(r"<img[^>]*onerror", html)
    assert "<strong>bold</strong>" in html
    assert '<code class="language-python">' in html
    assert 'href="javascript:' not in html
    sources = re.findall(r"<script\b[^>]*>", html)
    assert sources and all("src=" in tag for tag in sources)


def test_it_renders_a_conversation_with_role_labels(rater_client, project):
    labeling_services.prompts_import(
        project=project,
        raw=json.dumps(
            [
                {
                    "messages": [
                        {"role": "system", "content": "Be *brief*."},
                        {"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hello!"},
                        {"role": "user", "content": "Name a prime."},
                    ],
                    "responses": [{"text": "2"}, {"text": "4"}],
                }
            ]
        ),
    )
    html = rater_client.get(rate_url(project)).content.decode()
    assert html.count('class="turn turn-') == 4
    assert "<em>brief</em>" in html
    for role in ("System", "User", "Assistant"):
        assert f'<div class="turn-role">{role}</div>' in html


def test_it_shows_progress_and_the_lease(rater_client, rater, imported):
    html = rater_client.get(rate_url(imported)).content.decode()
    assert "data-done-today>0<" in html
    assert "data-left>5<" in html
    assert f'data-lease-seconds="{imported.lease_seconds}"' in html
    found = re.search(r'data-expires-in="(\d+)"', html)
    assert found is not None
    expires_in = int(found.group(1))
    assert imported.lease_seconds - 5 <= expires_in <= imported.lease_seconds


def test_done_today_counts_from_the_raters_midnight(rater_client, rater, imported):
    assignment = current_task(rater_client, imported, rater)
    rater_client.post(action_url("submit", assignment), rank_fields(assignment), **JSON)
    html = rater_client.get(rate_url(imported)).content.decode()
    assert "data-done-today>1<" in html
    Assignment.objects.filter(pk=assignment.pk).update(
        finished_at=timezone.now() - timedelta(days=2)
    )
    rater_client.cookies["ranklab_tz"] = "-300"
    html = rater_client.get(rate_url(imported)).content.decode()
    assert "data-done-today>0<" in html


def test_it_renders_the_rubric_under_each_response(rater_client, rater, imported):
    set_project(
        imported,
        rubric=[
            {
                "key": "helpful",
                "label": "Helpful",
                "kind": "scale",
                "min": 1,
                "max": 7,
                "required": True,
            },
            {"key": "unsafe", "label": "Unsafe", "kind": "checkbox"},
        ],
        require_rationale=True,
    )
    html = rater_client.get(rate_url(imported)).content.decode()
    current = live_assignments(rater)[0]
    page = html.split('<template id="following-task">')[0]
    for response_id in current.shown_order:
        assert page.count(f'name="rating-{response_id}-helpful"') == 7
        assert page.count(f'name="rating-{response_id}-unsafe"') == 1
    assert 'data-required="true"' in page
    assert re.search(r'<textarea[^>]*name="rationale"[^>]*\brequired\b', page, re.S)


def test_pairwise_task_shows_preference_and_strength(rater_client, rater, project):
    pairwise_project(project, rater)
    html = rater_client.get(rate_url(project)).content.decode().split("following-task")[0]
    assert 'data-mode="pairwise"' in html
    assert html.count('name="preference"') == 3
    assert [int(v) for v in re.findall(r'name="strength" value="(\d)"', html)] == [3, 2, 1, 0]
    assert "About the same" in html and "Much better" in html
    assert 'name="rank_' not in html


def test_pairwise_without_ties_offers_no_tie(rater_client, rater, project):
    pairwise_project(project, rater, allow_ties=False)
    html = rater_client.get(rate_url(project)).content.decode().split("following-task")[0]
    assert 'value="tie"' not in html
    assert [int(v) for v in re.findall(r'name="strength" value="(\d)"', html)] == [3, 2, 1]


def test_ranking_without_ties_offers_no_tie_button(rater_client, rater, imported):
    set_project(imported, allow_ties=False)
    html = rater_client.get(rate_url(imported)).content.decode()
    assert "data-tie-up" not in html


def test_empty_queue_says_so_without_a_form(rater_client, project):
    response = rater_client.get(rate_url(project))
    assert response.status_code == 200
    html = response.content.decode()
    assert EMPTY_QUEUE in html
    assert "rank-form" not in html


def test_paused_rater_sees_a_clear_message(rater_client, rater, imported):
    labeling_services.member_update(project=imported, username=rater.username, status="paused")
    response = rater_client.get(rate_url(imported))
    assert response.status_code == 403
    html = response.content.decode()
    assert "Your work on this project is paused" in html
    assert "rank-form" not in html
    assert not Assignment.objects.exists()


def test_outsider_gets_404(client, outsider, imported):
    client.force_login(outsider)
    assert client.get(rate_url(imported)).status_code == 404
    assert not Assignment.objects.exists()


def test_anonymous_is_sent_to_login(client, imported):
    response = client.get(rate_url(imported))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_page_runs_a_bounded_number_of_queries(
    rater_client, rater, imported, django_assert_max_num_queries
):
    rater_client.get(rate_url(imported))
    with django_assert_max_num_queries(20):
        rater_client.get(rate_url(imported))


# Guidelines ---------------------------------------------------------------------------------


def test_a_new_rater_sees_the_guidelines_before_the_first_task(rater_client, rater, imported):
    set_project(imported, guidelines="Prefer **correct** answers.")
    html = rater_client.get(rate_url(imported)).content.decode()
    assert "Before your first task: the guidelines" in html
    assert "<strong>correct</strong>" in html
    assert "rank-form" not in html
    assert not Assignment.objects.exists()

    response = rater_client.post(reverse("rankings:guidelines_seen", args=[imported.pk]))
    assert response.status_code == 302
    assert Membership.objects.get(user=rater).guidelines_seen_at is not None
    html = rater_client.get(rate_url(imported)).content.decode()
    assert "Before your first task" not in html
    assert "rank-form" in html
    # The guidelines stay one key away.
    assert 'id="guidelines-dialog"' in html


def test_projects_without_guidelines_start_at_once(rater_client, rater, imported):
    html = rater_client.get(rate_url(imported)).content.decode()
    assert "rank-form" in html
    assert 'id="guidelines-dialog"' not in html


def test_guidelines_seen_needs_membership(client, outsider, imported):
    client.force_login(outsider)
    assert client.post(reverse("rankings:guidelines_seen", args=[imported.pk])).status_code == 404
