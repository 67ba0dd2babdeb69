"""Generation jobs end to end, in process, against a real OpenAI-compatible server."""

from __future__ import annotations

import json
import logging

import pytest

from core.jobs import JobStatus
from labeling.models import Prompt, Response
from llm.models import CallStatus, Generation, GenerationJob
from llm.services import generation as generation_services
from tests.llm.helpers import SECRET, import_bare_prompts, make_endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def generate(api_for, lead, project, django_capture_on_commit_callbacks):
    """POST a generation and run it (in process, on commit); the job's report."""

    def run(endpoints, samples=1, prompts="missing", expect=202):
        with django_capture_on_commit_callbacks(execute=True):
            response = api_for(lead).post(
                f"/api/projects/{project.pk}/generations/",
                {"endpoints": [e.pk for e in endpoints], "samples": samples, "prompts": prompts},
                format="json",
            )
        assert response.status_code == expect, response.content
        if expect != 202:
            return response.json()
        return api_for(lead).get(f"/api/generations/{response.json()['id']}/").json()

    return run


def test_prompts_without_responses_wait_then_get_generated_and_served(
    api_for, client, project, rater, generate, fake_llm
):
    prompts = import_bare_prompts(project, 3)
    assert api_for(rater).get(f"/api/projects/{project.pk}/next-task/").status_code == 204
    a = make_endpoint(project, fake_llm.base_url, name="model-a", model="fake-a")
    b = make_endpoint(project, fake_llm.base_url, name="model-b", model="fake-b", temperature=0.2)

    report = generate([a, b], samples=1)

    assert report["status"] == JobStatus.DONE, report
    assert report["progress"] == {"planned": 6, "done": 6, "succeeded": 6, "failed": 0}
    assert report["failures"] == []
    assert report["tokens_in"] > 0 and report["tokens_out"] > 0
    assert report["wall_seconds"] >= 0
    for prompt in prompts:
        prompt.refresh_from_db()
        assert prompt.n_responses == 2
        texts = list(prompt.responses.order_by("position").values_list("text", flat=True))
        assert [t.split("]")[0] for t in texts] == ["[fake-a", "[fake-b"]
    response = Response.objects.filter(prompt=prompts[0], model_name="model-b").get()
    meta = response.metadata["generation"]
    assert meta["endpoint"] == "model-b" and meta["model"] == "fake-b"
    assert meta["parameters"]["temperature"] == 0.2
    assert meta["latency_ms"] > 0 and meta["tokens_in"] > 0 and meta["tokens_out"] > 0
    # Served now, and the rater sees neither the endpoint nor the model.
    task = api_for(rater).get(f"/api/projects/{project.pk}/next-task/")
    assert task.status_code == 200
    served = task.content.decode()
    for hidden in ("model-a", "model-b", 'fake-a"', "generation", "latency_ms"):
        assert hidden not in served
    assert len(task.json()["responses"]) == 2
    client.force_login(rater)
    page = client.get(f"/rate/{project.pk}/", follow=True)
    assert page.status_code == 200
    shown = task.json()["responses"][0]["text"]
    assert shown.split(" (")[0].replace("[fake-a]", "") in page.content.decode()
    assert b"model-a" not in page.content and b"model-b" not in page.content


def test_a_prompt_with_one_response_is_not_served(api_for, project, rater):
    import_bare_prompts(project, 2, responses=1)
    assert api_for(rater).get(f"/api/projects/{project.pk}/next-task/").status_code == 204


def test_generation_is_idempotent_per_prompt_endpoint_and_sample(project, generate, fake_llm):
    prompts = import_bare_prompts(project, 4)
    a = make_endpoint(project, fake_llm.base_url)
    first = generate([a], samples=2, prompts="all")
    assert first["progress"]["succeeded"] == 8
    calls = fake_llm.state.requests

    again = generate([a], samples=2, prompts="all")
    more = generate([a], samples=3, prompts=[prompts[0].pk])

    assert again["status"] == JobStatus.DONE and again["progress"]["planned"] == 0
    assert more["progress"]["planned"] == 1  # only sample 2 of that prompt is new
    assert fake_llm.state.requests == calls + 1
    assert Response.objects.filter(prompt__project=project).count() == 9
    assert Generation.objects.filter(status=CallStatus.DONE).count() == 9


def test_a_resumed_job_never_duplicates_a_response(
    project, lead, fake_llm, django_capture_on_commit_callbacks
):
    import_bare_prompts(project, 3)
    a = make_endpoint(project, fake_llm.base_url)
    with django_capture_on_commit_callbacks(execute=True):
        job = generation_services.generation_create(
            project=project, by=lead, endpoint_ids=[a.pk], samples=2, prompts="all"
        )
    # The job's task delivered again (a retried message): planning again finds nothing new.
    job.refresh_from_db()
    GenerationJob.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED)
    generation_services.generation_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    assert Response.objects.filter(prompt__project=project).count() == 6
    assert fake_llm.state.requests == 6


def test_failed_calls_are_recorded_and_retried_by_the_next_job(project, generate, fake_llm):
    import_bare_prompts(project, 3)
    a = make_endpoint(project, fake_llm.base_url, max_retries=0)
    fake_llm.state.faults.extend(["500"])

    report = generate([a])

    assert report["status"] == JobStatus.DONE  # one failing call never fails the job
    assert report["progress"] == {"planned": 3, "done": 3, "succeeded": 2, "failed": 1}
    (failure,) = report["failures"]
    assert failure["reason"].startswith("HTTP 500") and failure["endpoint"] == "model-a"
    assert SECRET not in json.dumps(report)
    retry = generate([a], prompts="all")
    assert retry["progress"] == {"planned": 1, "done": 1, "succeeded": 1, "failed": 0}
    assert Response.objects.filter(prompt__project=project).count() == 3


def test_429_and_500_are_retried_with_backoff(project, generate, fake_llm):
    import_bare_prompts(project, 1)
    a = make_endpoint(project, fake_llm.base_url, max_retries=3)
    fake_llm.state.faults.extend(["429", "500", "429"])
    report = generate([a])
    assert report["progress"]["succeeded"] == 1
    assert fake_llm.state.requests == 4


def test_timeouts_empty_and_malformed_answers_are_failures_with_reasons(
    project, generate, fake_llm
):
    import_bare_prompts(project, 3)
    a = make_endpoint(project, fake_llm.base_url, max_retries=0, timeout_seconds=1)
    fake_llm.state.hang_seconds = 2.5
    fake_llm.state.faults.extend(["hang", "malformed", "empty"])
    report = generate([a])
    reasons = sorted(failure["reason"] for failure in report["failures"])
    assert report["progress"]["failed"] == 3, report
    assert any("timed out" in reason for reason in reasons)
    assert any("empty completion" in reason for reason in reasons)
    assert len(set(reasons)) == 3


@pytest.mark.parametrize(("limit", "chunk"), [(3, 8), (2, 2)])
def test_the_endpoint_concurrency_limit_is_honoured(
    project, generate, fake_llm, settings, limit, chunk
):
    settings.LLM_CHUNK_PROMPTS = chunk
    import_bare_prompts(project, 8)
    a = make_endpoint(project, fake_llm.base_url, concurrency=limit)
    fake_llm.state.latency = 0.15
    report = generate([a], samples=2)
    assert report["progress"]["succeeded"] == 16
    assert fake_llm.state.max_in_flight == limit


def test_served_and_full_prompts_are_skipped_with_the_reason(
    api_for, project, rater, generate, fake_llm
):
    import_bare_prompts(project, 1, prefix="served", responses=2)
    import_bare_prompts(project, 1, prefix="full", responses=8)
    assert api_for(rater).get(f"/api/projects/{project.pk}/next-task/").status_code == 200
    a = make_endpoint(project, fake_llm.base_url, name="a")
    b = make_endpoint(project, fake_llm.base_url, name="b")
    report = generate([a, b], prompts="all")
    assert report["progress"]["planned"] == 0
    assert report["skipped"] == {
        generation_services.SKIP_SERVED: 1,
        generation_services.SKIP_FULL: 1,
    }
    assert fake_llm.state.requests == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"endpoints": [], "samples": 1}, "endpoints"),
        ({"endpoints": [999999], "samples": 1}, "endpoints"),
        ({"samples": 0}, "samples"),
        ({"samples": 10}, "samples"),
        ({"prompts": "some"}, "prompts"),
        ({"prompts": [999999]}, "prompts"),
        ({"prompts": ["x"]}, "prompts"),
    ],
)
def test_bad_generation_requests_are_400s_naming_the_field(
    api_for, lead, project, fake_llm, body, field
):
    a = make_endpoint(project, fake_llm.base_url)
    full = {"endpoints": [a.pk], "samples": 1, "prompts": "missing", **body}
    response = api_for(lead).post(f"/api/projects/{project.pk}/generations/", full, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field


def test_another_projects_endpoint_is_refused(api_for, lead, project, fake_llm):
    from labeling import services as labeling_services

    other = labeling_services.project_create(creator=lead, name="Other")
    foreign = make_endpoint(other, fake_llm.base_url)
    response = api_for(lead).post(
        f"/api/projects/{project.pk}/generations/", {"endpoints": [foreign.pk]}, format="json"
    )
    assert response.status_code == 400 and response.json()["field"] == "endpoints"


def test_raters_cannot_start_or_read_generations(api_for, project, rater, generate, fake_llm):
    import_bare_prompts(project, 1)
    a = make_endpoint(project, fake_llm.base_url)
    report = generate([a])
    assert api_for(rater).get(f"/api/generations/{report['id']}/").status_code == 403
    response = api_for(rater).post(
        f"/api/projects/{project.pk}/generations/", {"endpoints": [a.pk]}, format="json"
    )
    assert response.status_code == 403


def test_the_key_never_leaks_into_bodies_or_logs(
    api_for, lead, project, generate, fake_llm, caplog
):
    caplog.set_level(logging.DEBUG)
    import_bare_prompts(project, 2)
    a = make_endpoint(project, fake_llm.base_url, max_retries=1)
    fake_llm.state.faults.extend(["500", "500", "429"])
    report = generate([a])
    assert report["progress"]["done"] == 2
    api = api_for(lead)
    bodies = [
        json.dumps(report),
        api.get(f"/api/projects/{project.pk}/generations/").content.decode(),
        api.get(f"/api/projects/{project.pk}/endpoints/").content.decode(),
        json.dumps(list(Response.objects.values_list("metadata", flat=True))),
        json.dumps(list(Generation.objects.values_list("error", flat=True))),
    ]
    for body in bodies:
        assert SECRET not in body
    assert caplog.records, "expected the client's debug logs to be captured"
    assert SECRET not in caplog.text
    assert all(SECRET not in record.getMessage() for record in caplog.records)
    assert set(fake_llm.state.authorizations) == {f"Bearer {SECRET}"}
    succeeded = report["progress"]["succeeded"]
    assert Prompt.objects.filter(project=project, n_responses=1).count() == succeeded


def test_a_job_whose_worker_was_lost_is_resumed_by_the_sweep(
    project, lead, fake_llm, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from core.jobs import jobs_sweep_kind

    import_bare_prompts(project, 4)
    a = make_endpoint(project, fake_llm.base_url)
    # A worker claimed the job, planned it, stored one prompt, then died: silent since.
    job = GenerationJob.objects.create(
        project=project, created_by=lead, endpoint_ids=[a.pk], samples=1, prompt_selection="all"
    )
    long_ago = timezone.now() - timedelta(seconds=150)
    GenerationJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, attempts=1, started_at=long_ago, heartbeat_at=long_ago,
        sent_at=long_ago, created_at=long_ago,
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        first = Prompt.objects.filter(project=project).order_by("pk")[0]
        generation_services.generation_create(
            project=project, by=lead, endpoint_ids=[a.pk], samples=1, prompts=[first.pk]
        )
    assert fake_llm.state.requests == 1
    Generation.objects.filter(prompt__project=project).exclude(prompt=first).delete()

    with django_capture_on_commit_callbacks(execute=True):
        result = jobs_sweep_kind(GenerationJob, now=timezone.now() + timedelta(seconds=200))

    assert result.resent == (job.pk,)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.attempts == 2
    assert fake_llm.state.requests == 4  # the three missing calls, not the stored one again
    assert Response.objects.filter(prompt__project=project).count() == 4
    assert Generation.objects.filter(job=job).count() == 3
