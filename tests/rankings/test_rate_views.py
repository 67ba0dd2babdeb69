"""The rater's ranking page: full page, htmx fragments, and the no-JavaScript fallback."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from labeling import services as labeling_services
from labeling.models import Assignment, AssignmentStatus, Response
from rankings.models import Ranking

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
EMPTY_QUEUE = "Nothing left to rank in this project — thank you!"


@pytest.fixture
def rater_client(client, rater):
    client.force_login(rater)
    return client


def rate_url(project) -> str:
    return reverse("rankings:rate", kwargs={"project_id": project.pk})


def submit_url(assignment) -> str:
    return reverse("rankings:submit", kwargs={"assignment_id": assignment.pk})


def skip_url(assignment) -> str:
    return reverse("rankings:skip", kwargs={"assignment_id": assignment.pk})


def live_assignment(rater) -> Assignment:
    return Assignment.objects.get(
        rater=rater, status=AssignmentStatus.LEASED, expires_at__gt=timezone.now()
    )


def shown_card_ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'data-response-id="(\d+)"', html)]


def test_it_renders_the_task_with_responses_in_shown_order(rater_client, rater, imported):
    response = rater_client.get(rate_url(imported))
    assert response.status_code == 200
    html = response.content.decode()
    assignment = live_assignment(rater)
    assert shown_card_ids(html) == assignment.shown_order
    labels = re.findall(r'data-label="([A-Z])"', html)
    assert labels == ["A", "B", "C"]
    texts = dict(Response.objects.values_list("id", "text"))
    positions = [html.index(texts[response_id]) for response_id in assignment.shown_order]
    assert positions == sorted(positions)
    assert "Question number 0" in html
    assert 'class="turn turn-user"' in html
    assert "model-0" not in html and "model-1" not in html
    assert 'id="task"' in html and "<html" in html
    assert "ranklab/rank.js" in html


def test_it_gives_back_the_same_task_on_reload(rater_client, rater, imported):
    rater_client.get(rate_url(imported))
    first = live_assignment(rater)
    rater_client.get(rate_url(imported))
    assert Assignment.objects.filter(rater=rater).count() == 1
    assert live_assignment(rater).pk == first.pk


def test_it_escapes_script_and_event_handlers_in_responses(rater_client, imported):
    Response.objects.filter(position=0).update(
        text="Try this: <script>alert(1)</script> and <img src=x onerror=alert(1)> **bold**"
    )
    Response.objects.filter(position=1).update(text="[click](javascript:alert(1))")
    html = rater_client.get(rate_url(imported)).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not re.search(r"<img[^>]*onerror", html)
    assert "<strong>bold</strong>" in html
    assert 'href="javascript:' not in html
    # Our own scripts are the only <script> elements on the page.
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


def test_it_shows_the_done_count_and_the_lease_expiry(rater_client, rater, imported):
    html = rater_client.get(rate_url(imported)).content.decode()
    assignment = live_assignment(rater)
    assert "data-done-count>0<" in html
    assert f'datetime="{assignment.expires_at.isoformat()}"' in html


def test_htmx_submit_returns_the_next_task_fragment(rater_client, rater, imported):
    rater_client.get(rate_url(imported))
    first = live_assignment(rater)
    groups = [[first.shown_order[1]], [first.shown_order[0]], [first.shown_order[2]]]
    response = rater_client.post(
        submit_url(first), {"ranking": json.dumps(groups), "seconds": "7.5"}, **HTMX
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and html.lstrip().startswith('<section id="task"')
    ranking = Ranking.objects.get(assignment=first)
    assert ranking.groups == groups
    assert ranking.seconds == 7.5
    second = live_assignment(rater)
    assert second.pk != first.pk
    assert shown_card_ids(html) == second.shown_order
    assert "Ranking saved." in html
    assert "data-done-count>1<" in html


def test_htmx_submit_keeps_the_rationale(rater_client, rater, imported):
    rater_client.get(rate_url(imported))
    assignment = live_assignment(rater)
    groups = [[response_id] for response_id in assignment.shown_order]
    rater_client.post(
        submit_url(assignment),
        {"ranking": json.dumps(groups), "rationale": "A is precise."},
        **HTMX,
    )
    assert Ranking.objects.get().rationale == "A is precise."


def test_htmx_submit_accepts_ties_when_the_project_allows_them(rater_client, rater, imported):
    rater_client.get(rate_url(imported))
    assignment = live_assignment(rater)
    ids = assignment.shown_order
    rater_client.post(submit_url(assignment), {"ranking": json.dumps([ids[:2], ids[2:]])}, **HTMX)
    assert Ranking.objects.get().groups == [ids[:2], ids[2:]]


@pytest.mark.parametrize(
    ("ranking", "message"),
    [
        ("not json", "ranking: is not valid JSON"),
        ("{{}}", "ranking: must be a list of tie groups"),
        ("[[{first}]]", "every response must be ranked"),
        ("[[{first}], [{first}], [999999]]", "appears twice"),
    ],
)
def test_invalid_ranking_shows_the_message_and_keeps_the_task(
    rater_client, rater, imported, ranking, message
):
    rater_client.get(rate_url(imported))
    assignment = live_assignment(rater)
    raw = ranking.format(first=assignment.shown_order[0])
    response = rater_client.post(submit_url(assignment), {"ranking": raw}, **HTMX)
    assert response.status_code == 422
    html = response.content.decode()
    assert message.lower() in html.lower()
    assert not Ranking.objects.exists()
    assert shown_card_ids(html) == assignment.shown_order
    assert live_assignment(rater).pk == assignment.pk


def test_ties_are_refused_when_the_project_does_not_allow_them(rater_client, rater, imported):
    imported.allow_ties = False
    imported.save(update_fields=["allow_ties"])
    html = rater_client.get(rate_url(imported)).content.decode()
    assert "data-tie" not in html
    assignment = live_assignment(rater)
    ids = assignment.shown_order
    response = rater_client.post(
        submit_url(assignment), {"ranking": json.dumps([ids[:2], ids[2:]])}, **HTMX
    )
    assert response.status_code == 422
    assert "ties are not allowed" in response.content.decode()
    assert not Ranking.objects.exists()


def test_a_lease_taken_over_is_a_409_with_the_next_task(
    rater_client, rater, make_user, add_member, imported
):
    imported.overlap = 1
    imported.save(update_fields=["overlap"])
    rater_client.get(rate_url(imported))
    mine = live_assignment(rater)
    past = timezone.now() - timedelta(minutes=20)
    Assignment.objects.filter(pk=mine.pk).update(
        leased_at=past, expires_at=past + timedelta(minutes=10)
    )
    other = add_member(make_user("quick"))
    taken = labeling_services.lease_next_assignment(project=imported, rater=other)
    assert taken.prompt_id == mine.prompt_id
    groups = [[response_id] for response_id in mine.shown_order]
    response = rater_client.post(submit_url(mine), {"ranking": json.dumps(groups)}, **HTMX)
    assert response.status_code == 409
    html = response.content.decode()
    assert "given to another rater" in html
    assert not Ranking.objects.filter(rater=rater).exists()
    nxt = live_assignment(rater)
    assert nxt.prompt_id != mine.prompt_id
    assert shown_card_ids(html) == nxt.shown_order


def test_empty_queue_says_so_without_a_form(rater_client, project):
    response = rater_client.get(rate_url(project))
    assert response.status_code == 200
    html = response.content.decode()
    assert EMPTY_QUEUE in html
    assert "rank-form" not in html


def test_the_last_submit_shows_the_empty_queue(rater_client, rater, project):
    labeling_services.prompts_import(
        project=project, raw=json.dumps([{"prompt": "Only one", "responses": ["a", "b"]}])
    )
    rater_client.get(rate_url(project))
    assignment = live_assignment(rater)
    groups = [[response_id] for response_id in assignment.shown_order]
    response = rater_client.post(submit_url(assignment), {"ranking": json.dumps(groups)}, **HTMX)
    assert EMPTY_QUEUE in response.content.decode()


def test_outsider_gets_404(client, outsider, imported):
    client.force_login(outsider)
    assert client.get(rate_url(imported)).status_code == 404
    assert not Assignment.objects.exists()


def test_someone_elses_assignment_is_404(client, rater, rater2, imported):
    client.force_login(rater)
    client.get(rate_url(imported))
    assignment = live_assignment(rater)
    client.force_login(rater2)
    groups = [[response_id] for response_id in assignment.shown_order]
    assert client.post(submit_url(assignment), {"ranking": json.dumps(groups)}).status_code == 404
    assert client.post(skip_url(assignment), {"reason": "x"}).status_code == 404
    assert not Ranking.objects.exists()


def test_anonymous_is_sent_to_login(client, imported):
    response = client.get(rate_url(imported))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_paused_rater_sees_a_clear_message(rater_client, rater, imported):
    labeling_services.member_update(project=imported, username=rater.username, status="paused")
    response = rater_client.get(rate_url(imported))
    assert response.status_code == 403
    html = response.content.decode()
    assert "Your work on this project is paused" in html
    assert "rank-form" not in html
    assert not Assignment.objects.exists()


def test_htmx_skip_moves_to_the_next_task(rater_client, rater, imported):
    rater_client.get(rate_url(imported))
    first = live_assignment(rater)
    response = rater_client.post(skip_url(first), {"reason": "I can't judge this topic"}, **HTMX)
    assert response.status_code == 200
    first.refresh_from_db()
    assert first.status == AssignmentStatus.SKIPPED
    assert first.skip_reason == "I can't judge this topic"
    second = live_assignment(rater)
    assert second.prompt_id != first.prompt_id
    assert shown_card_ids(response.content.decode()) == second.shown_order


def test_skip_needs_a_reason(rater_client, rater, imported):
    rater_client.get(rate_url(imported))
    assignment = live_assignment(rater)
    response = rater_client.post(skip_url(assignment), {"reason": "  "}, **HTMX)
    assert response.status_code == 422
    assert "say why you skip this task" in response.content.decode()
    assert live_assignment(rater).pk == assignment.pk


def test_plain_post_redirects_back_to_the_page(rater_client, rater, imported):
    rater_client.get(rate_url(imported))
    assignment = live_assignment(rater)
    groups = [[response_id] for response_id in assignment.shown_order]
    response = rater_client.post(submit_url(assignment), {"ranking": json.dumps(groups)})
    assert response.status_code == 302
    assert response["Location"] == rate_url(imported)
    assert Ranking.objects.filter(assignment=assignment).exists()
    page = rater_client.get(rate_url(imported)).content.decode()
    assert "Ranking saved." in page


def test_plain_post_with_rank_numbers_works_without_javascript(rater_client, rater, imported):
    rater_client.get(rate_url(imported))
    assignment = live_assignment(rater)
    first, second, third = assignment.shown_order
    response = rater_client.post(
        submit_url(assignment),
        {"ranking": "", f"rank_{first}": "2", f"rank_{second}": "1", f"rank_{third}": "2"},
    )
    assert response.status_code == 302
    assert Ranking.objects.get().groups == [[second], [first, third]]


def test_plain_post_with_missing_rank_numbers_redirects_with_the_message(
    rater_client, rater, imported
):
    rater_client.get(rate_url(imported))
    assignment = live_assignment(rater)
    response = rater_client.post(
        submit_url(assignment), {f"rank_{assignment.shown_order[0]}": "1"}, follow=True
    )
    assert "give every response a rank before submitting" in response.content.decode()
    assert not Ranking.objects.exists()


def test_plain_skip_redirects_back_to_the_page(rater_client, rater, imported):
    rater_client.get(rate_url(imported))
    assignment = live_assignment(rater)
    response = rater_client.post(skip_url(assignment), {"reason": "broken"})
    assert response.status_code == 302
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.SKIPPED


def test_submit_and_skip_refuse_get(rater_client, rater, imported):
    rater_client.get(rate_url(imported))
    assignment = live_assignment(rater)
    assert rater_client.get(submit_url(assignment)).status_code == 405
    assert rater_client.get(skip_url(assignment)).status_code == 405


def test_the_page_runs_a_bounded_number_of_queries(
    rater_client, rater, imported, django_assert_max_num_queries
):
    rater_client.get(rate_url(imported))
    with django_assert_max_num_queries(12):
        rater_client.get(rate_url(imported), **HTMX)
