"""The demonstration rater page (plain forms, without JavaScript) and its preview endpoint."""

from __future__ import annotations

import pytest
from django.urls import reverse

from authoring.demonstrations import services
from authoring.demonstrations.models import Demonstration, DemonstrationStatus
from rankings.models import Ranking
from tests.authoring.demonstrations.helpers import make_demo_project
from tests.helpers import import_prompts

pytestmark = pytest.mark.django_db

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


@pytest.fixture
def page_project(lead):
    project = make_demo_project(lead, review_rate=1.0)
    import_prompts(project, [{"prompt": f"Explain **tides**. {XSS}", "responses": []}])
    return project


@pytest.fixture
def writer_client(client, make_user, page_project, join):
    (writer,) = join(page_project, make_user("writer"))
    client.force_login(writer)
    client.user = writer
    return client


def _rate(client, project):
    return client.get(reverse("rankings:rate", kwargs={"project_id": project.pk}))


def test_write_page_shows_prompt_editor_preview_and_guidelines(writer_client, page_project):
    response = _rate(writer_client, page_project)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-task="write"' in html and "data-editor" in html and "data-preview" in html
    assert "<strong>tides</strong>" in html
    assert "<script>alert" not in html and "<img" not in html  # raw HTML is shown as text
    assert 'id="guidelines-dialog"' in html and "<strong>helpful</strong>" in html
    assert "demonstration.js" in html


def test_preview_renders_sanitized_markdown(writer_client):
    url = reverse("demonstrations:preview")
    response = writer_client.post(url, {"text": f"# Title\n\n*ok* {XSS}"})
    assert response.status_code == 200
    html = response.json()["html"]
    assert '<h1 dir="auto">Title</h1>' in html and "<em>ok</em>" in html
    assert "<script" not in html and "<img" not in html
    too_long = writer_client.post(url, {"text": "x" * 20_001})
    assert too_long.status_code == 400 and too_long.json()["field"] == "text"


def test_preview_needs_a_login(client):
    response = client.post(reverse("demonstrations:preview"), {"text": "hi"})
    assert response.status_code == 302


def test_form_submit_saves_and_moves_on(writer_client, page_project):
    assignment_id = services.task_for_rater(
        project=page_project, rater=writer_client.user
    ).assignment.pk
    url = reverse("demonstrations:submit", kwargs={"assignment_id": assignment_id})
    response = writer_client.post(url, {"text": "High and low **water**.\r\n", "seconds": "42.5"})
    assert response.status_code == 302
    demonstration = Demonstration.objects.get()
    assert demonstration.text == "High and low **water**." and demonstration.seconds == 42.5
    assert "Nothing left" in _rate(writer_client, page_project).content.decode()


def test_empty_submit_keeps_the_rater_on_the_task(writer_client, page_project):
    assignment_id = services.task_for_rater(
        project=page_project, rater=writer_client.user
    ).assignment.pk
    url = reverse("demonstrations:submit", kwargs={"assignment_id": assignment_id})
    response = writer_client.post(url, {"text": "   "})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Text: write the reply" in html and 'data-task="write"' in html
    assert not Demonstration.objects.exists()


def test_review_page_decides_with_reasons(client, make_user, page_project, join, writer_client):
    assignment_id = services.task_for_rater(
        project=page_project, rater=writer_client.user
    ).assignment.pk
    services.demonstration_submit(
        assignment_id=assignment_id, rater=writer_client.user, text="Moon pulls <b>water</b>."
    )
    (reviewer,) = join(page_project, make_user("reviewer"))
    client.force_login(reviewer)
    html = _rate(client, page_project).content.decode()
    assert 'data-task="review"' in html
    assert "Moon pulls &lt;b&gt;water&lt;/b&gt;." in html  # the editor shows the source, escaped
    review_id = services.task_for_rater(project=page_project, rater=reviewer).review.pk
    url = reverse("demonstrations:review", kwargs={"review_id": review_id})
    refused = client.post(url, {"decision": "reject", "reason": ""})
    assert refused.status_code == 400 and "Reason: say why" in refused.content.decode()
    accepted = client.post(url, {"decision": "edit", "text": "The Moon pulls the water."})
    assert accepted.status_code == 302
    assert Demonstration.objects.get().status == DemonstrationStatus.EDITED


def test_writer_page_never_offers_their_own_reply_for_review(writer_client, page_project):
    assignment_id = services.task_for_rater(
        project=page_project, rater=writer_client.user
    ).assignment.pk
    services.demonstration_submit(
        assignment_id=assignment_id, rater=writer_client.user, text="Mine"
    )
    html = _rate(writer_client, page_project).content.decode()
    assert 'data-task="review"' not in html and "Nothing left" in html


def test_rank_then_rewrite_form(client, lead, make_user, join):
    project = make_demo_project(lead, mode="rank_then_rewrite")
    import_prompts(
        project, [{"prompt": "Hi?", "responses": [{"text": "Hello <i>there</i>"}, {"text": "Yo"}]}]
    )
    (writer,) = join(project, make_user("writer"))
    client.force_login(writer)
    html = _rate(client, project).content.decode()
    assert "Rank the responses" in html and "data-rewrite-best" in html
    assert "Hello &lt;i&gt;there&lt;/i&gt;" in html  # the source to copy, escaped
    assignment = services.task_for_rater(project=project, rater=writer).assignment
    first, second = assignment.shown_order
    url = reverse("demonstrations:submit", kwargs={"assignment_id": assignment.pk})
    missing = client.post(url, {"text": "Hello!", f"rank_{first}": "1"})
    assert (
        missing.status_code == 400
        and "Ranking: give every response a rank" in missing.content.decode()
    )
    done = client.post(url, {"text": "Hello!", f"rank_{first}": "2", f"rank_{second}": "1"})
    assert done.status_code == 302
    assert Ranking.objects.get().groups == [[second], [first]]
    assert Demonstration.objects.get().original_response_id == second
