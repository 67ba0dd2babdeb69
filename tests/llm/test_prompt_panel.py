"""The AI judge's verdicts on the prompt page and in `GET /api/prompts/{id}/`: ranking with
tie groups, both shown orders, consistency, low-confidence pairs, rationale (escaped) —
beside the human rankings, never mixed into them."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from labeling import services as labeling_services
from labeling.models import Prompt
from llm.models import CallStatus, JudgeVerdict
from tests.helpers import sample_records
from tests.llm.helpers import make_endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged(project, fake_llm):
    labeling_services.prompts_import(
        project=project, raw=json.dumps(sample_records(2, responses=3))
    )
    prompt = Prompt.objects.filter(project=project).order_by("pk")[0]
    a, b, c = list(prompt.responses.order_by("position").values_list("pk", flat=True))
    first = make_endpoint(project, fake_llm.base_url, name="judge-one")
    second = make_endpoint(project, fake_llm.base_url, name="judge-two", model="fake-b")
    JudgeVerdict.objects.create(
        endpoint=first, prompt=prompt, status=CallStatus.DONE, groups=[[b], [a, c]],
        forward=[[b], [a, c]], reverse=[[b], [a, c]], consistent=True, pairs=3,
        rationale="B is <b>clearly</b> best",
    )  # fmt: skip
    JudgeVerdict.objects.create(
        endpoint=second, prompt=prompt, status=CallStatus.DONE, groups=[[a, b], [c]],
        forward=[[a], [b], [c]], reverse=[[b], [a], [c]], consistent=False, pairs=3,
        flipped_pairs=1, rationale="<script>alert(1)</script>",
    )  # fmt: skip
    return prompt, first, second


def test_the_api_lists_each_judges_verdict(api_for, engineer, judged):
    prompt, _, _ = judged
    body = api_for(engineer).get(f"/api/prompts/{prompt.pk}/").json()
    verdicts = body["extras"]["ai_judge"]["verdicts"]
    assert [v["endpoint"] for v in verdicts] == ["judge-one", "judge-two"]
    one, two = verdicts
    assert one["labels"] == [["B"], ["A", "C"]] and one["consistent"] is True
    assert not one["low_confidence"] and one["flipped_pairs"] == []
    assert two["labels"] == [["A", "B"], ["C"]] and two["low_confidence"] is True
    assert two["forward_labels"] == [["A"], ["B"], ["C"]]
    assert two["reverse_labels"] == [["B"], ["A"], ["C"]]
    assert two["flipped_pairs"] == [["A", "B"]]
    # Human parts of the page are untouched by the judge.
    assert body["rankings"] == [] and body["consensus"] == []
    assert "api_key" not in json.dumps(body) and "sk-" not in json.dumps(body)


def test_the_prompt_page_shows_the_verdicts_escaped(lead, project, judged):
    prompt, first, _ = judged
    client = Client()
    client.force_login(lead)
    page = client.get(f"/rate/{project.pk}/prompts/{prompt.pk}/").content.decode()
    assert page.count("data-ai-verdict=") == 2
    assert f'data-ai-verdict="{first.pk}"' in page and "data-ai-consistent" in page
    assert "data-ai-low-confidence" in page and "A\u2013B" in page
    assert "B = C" not in page and "A = C" in page  # tie group of judge-one
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    other = Prompt.objects.filter(project=project).exclude(pk=prompt.pk).get()
    assert (
        "data-ai-judge"
        not in client.get(f"/rate/{project.pk}/prompts/{other.pk}/").content.decode()
    )


def test_a_failed_verdict_shows_its_error_not_a_ranking(lead, api_for, project, judged):
    prompt, first, _ = judged
    JudgeVerdict.objects.filter(endpoint=first).update(
        status=CallStatus.FAILED, groups=[], forward=[], reverse=[], consistent=None,
        error="malformed answer twice",
    )  # fmt: skip
    verdict = api_for(lead).get(f"/api/prompts/{prompt.pk}/").json()["extras"]["ai_judge"]
    one = verdict["verdicts"][0]
    assert one["status"] == "failed" and one["labels"] == [] and not one["low_confidence"]
    client = Client()
    client.force_login(lead)
    page = client.get(f"/rate/{project.pk}/prompts/{prompt.pk}/").content.decode()
    assert "data-ai-failed" in page and "malformed answer twice" in page


def test_pending_verdicts_are_not_shown(api_for, lead, judged):
    prompt, _, _ = judged
    JudgeVerdict.objects.update(status=CallStatus.PENDING)
    assert "ai_judge" not in api_for(lead).get(f"/api/prompts/{prompt.pk}/").json()["extras"]
