"""The lead's models page: endpoints with write-only keys, generation started and watched."""

from __future__ import annotations

import json
import re

import pytest

from llm.models import GenerationJob, ModelEndpoint
from tests.helpers import PASSWORD
from tests.llm.helpers import SECRET, import_bare_prompts, make_endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead_client(client, lead):
    lead.set_password(PASSWORD)
    lead.save()
    client.login(username=lead.username, password=PASSWORD)
    return client


def no_inline_code(html: str) -> None:
    assert " style=" not in html
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag, tag


def test_a_lead_adds_an_endpoint_whose_key_never_comes_back(lead_client, project, fake_llm):
    url = f"/models/{project.pk}/"
    response = lead_client.post(
        f"{url}endpoints/",
        {
            "name": "local",
            "base_url": fake_llm.base_url,
            "model": "fake-a",
            "api_key": SECRET,
            "temperature": "0.5",
            "top_p": "1",
            "max_tokens": "64",
            "concurrency": "2",
            "timeout_seconds": "10",
            "system_prompt": "",
        },
        follow=True,
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "local" in page and SECRET not in page
    no_inline_code(page)
    endpoint = ModelEndpoint.objects.get(project=project)
    assert endpoint.has_api_key and endpoint.temperature == 0.5
    tested = lead_client.post(f"{url}endpoints/{endpoint.pk}/test/", headers={"HX-Request": "true"})
    assert b"data-test-ok" in tested.content and SECRET.encode() not in tested.content


def test_a_bad_endpoint_form_names_the_field_and_drops_the_key(lead_client, project):
    response = lead_client.post(
        f"/models/{project.pk}/endpoints/",
        {"name": "x", "base_url": "ftp://nowhere", "model": "m", "api_key": SECRET},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "base_url" in page and SECRET not in page
    assert not ModelEndpoint.objects.exists()


def test_a_lead_starts_a_generation_and_watches_it(
    lead_client, project, fake_llm, django_capture_on_commit_callbacks
):
    import_bare_prompts(project, 3)
    endpoint = make_endpoint(project, fake_llm.base_url, max_retries=0)
    fake_llm.state.faults.append("500")
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            f"/models/{project.pk}/generations/",
            {"endpoints": [str(endpoint.pk)], "samples": "1", "prompts": "missing"},
            follow=True,
        )
    assert response.status_code == 200
    job = GenerationJob.objects.get(project=project)
    assert job.status == "done"
    fragment = lead_client.get(f"/models/{project.pk}/?fragment=jobs").content.decode()
    assert f'data-generation="{job.pk}"' in fragment
    assert "2 of 3" not in fragment and "3 of 3" in fragment and "1 failed" in fragment
    assert "HTTP 500" in fragment and SECRET not in fragment
    assert "hx-trigger" not in fragment  # nothing live: no more polling
    no_inline_code(response.content.decode())


def test_a_live_job_is_polled(lead_client, project, fake_llm):
    endpoint = make_endpoint(project, fake_llm.base_url)
    GenerationJob.objects.create(
        project=project, endpoint_ids=[endpoint.pk], prompt_selection="all"
    )
    fragment = lead_client.get(f"/models/{project.pk}/?fragment=jobs").content.decode()
    assert 'hx-trigger="every 2s"' in fragment


def test_a_generation_without_endpoints_is_refused_on_the_page(lead_client, project, fake_llm):
    make_endpoint(project, fake_llm.base_url)
    response = lead_client.post(f"/models/{project.pk}/generations/", {"samples": "1"})
    assert response.status_code == 400
    assert "at least one endpoint" in response.content.decode()


def test_raters_cannot_open_the_models_page(client, project, rater):
    rater.set_password(PASSWORD)
    rater.save()
    client.login(username=rater.username, password=PASSWORD)
    assert client.get(f"/models/{project.pk}/").status_code == 403


def test_a_lead_runs_the_judge_and_reads_its_calibration(
    lead_client, project, make_user, add_member, fake_llm, django_capture_on_commit_callbacks
):
    from labeling import services as labeling_services
    from tests.llm.test_judge import quality_judge
    from tests.rankings.agreement_helpers import rank_in_turns

    labeling_services.project_update(project=project, overlap=2, gold_rate=0.0)
    records = [
        {"external_id": f"c{i}", "prompt": f"Task {i}",
         "responses": ["<script>alert(1)</script> quality 1", "answer quality 3",
                       "answer quality 2"]}
        for i in range(4)
    ]  # fmt: skip
    labeling_services.prompts_import(project=project, raw=json.dumps(records))
    rank_in_turns(project, [add_member(make_user(f"h{i}")) for i in range(2)], seed=2)
    fake_llm.state.judge = quality_judge
    endpoint = make_endpoint(project, fake_llm.base_url, name="judge-model")
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            f"/models/{project.pk}/judge/",
            {"endpoint": str(endpoint.pk), "prompts": "unjudged"},
        )
    assert response.status_code == 302
    response = lead_client.get(f"/models/{project.pk}/")
    page = response.content.decode()
    assert "Can judge-model be trusted?" in page
    assert "Agreement with the human consensus" in page and "data-disagreeing" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "=== Response A ===" in page  # the preview of the exact messages
    fragment = lead_client.get(f"/models/{project.pk}/?fragment=jobs").content.decode()
    assert "data-judge-run" in fragment and "1.00 of pairs (0 flipped" in fragment
    no_inline_code(page)
    saved = lead_client.post(
        f"/models/{project.pk}/judge/template/",
        {"system_template": "Be strict. {guidelines}", "user_template": "{responses}"},
        follow=True,
    )
    assert "Be strict." in saved.content.decode()
    refused = lead_client.post(
        f"/models/{project.pk}/judge/template/", {"system_template": "x", "user_template": "y"}
    )
    assert refused.status_code == 400 and "{responses}" in refused.content.decode()
