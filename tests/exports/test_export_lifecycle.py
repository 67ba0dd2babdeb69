"""Export jobs through the one job lifecycle (`core.jobs`), with no part of it mocked: a lost
message, a worker killed mid-export, a job retaken or given up, a broker that is down."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from core.jobs import MAX_ATTEMPTS, JobStatus, job_claim, job_fail
from core.tasks import jobs_sweep_task
from exports import selectors, services
from exports.models import ExportJob, exports_storage
from exports.services import batches
from exports.services.staging import staged_file, staging_folder
from exports.tasks import export_job_run_task
from tests.exports.broker import broker_refusing
from tests.helpers import import_prompts, sample_records

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def ranked(project, rater, rater2, make_ranking):
    prompts = import_prompts(project, sample_records(12))
    for prompt in prompts:
        make_ranking(prompt, rater, [[0], [1], [2]])
        make_ranking(prompt, rater2, [[1], [0], [2]])
    return project


def queued_job(project, user, **kwargs) -> ExportJob:
    """A job whose message never reached a worker: in a test's transaction, which is never
    committed, `job_enqueue`'s on-commit send never happens."""
    return services.export_job_create(project=project, created_by=user, **kwargs)


def age(job: ExportJob, seconds: int, field: str = "created_at") -> None:
    ExportJob.objects.filter(pk=job.pk).update(
        **{field: timezone.now() - timedelta(seconds=seconds)}
    )


def sweep() -> dict[str, int]:
    return jobs_sweep_task.delay().get()


def partial_files(job: ExportJob) -> list[str]:
    return sorted(
        path.name for path in staging_folder(exports_storage()).glob(f"export-{job.pk}-*")
    )


def left_behind(job: ExportJob, attempt: int, part: str = "all") -> None:
    """What a worker killed mid-export leaves: a staged file with some rows in it."""
    handle, _ = staged_file(exports_storage(), job_id=job.pk, attempt=attempt, part=part)
    with handle:
        handle.write(b'{"prompt":"half a file"')


# --- a lost message -----------------------------------------------------------------------


def test_a_job_whose_message_was_lost_is_sent_again_by_the_sweep_and_finishes(
    api_for, engineer, ranked, settings, export_folder
):
    lost = queued_job(ranked, engineer)
    fresh = queued_job(ranked, engineer)
    age(lost, settings.JOB_QUEUED_SECONDS + 5)

    swept = sweep()  # tasks run in-process here: the message sent again runs the job

    assert swept["exports.ExportJob.resent"] == 1 and swept["exports.ExportJob"] == 0
    body = api_for(engineer).get(f"/api/exports/{lost.pk}/").json()
    assert body["status"] == "done" and body["rows"] == 12 * 2 * 3
    assert api_for(engineer).get(f"/api/exports/{fresh.pk}/").json()["status"] == "queued"


def test_a_job_no_worker_picked_up_is_failed_when_the_sweep_gives_up_and_the_api_says_why(
    api_for, engineer, ranked, settings
):
    lost = queued_job(ranked, engineer)
    age(lost, settings.JOB_GIVE_UP_SECONDS + 5)

    swept = sweep()

    assert swept["exports.ExportJob"] == 1
    body = api_for(engineer).get(f"/api/exports/{lost.pk}/").json()
    assert body["status"] == "failed"
    assert "queued but never picked up by a worker" in body["error"]
    assert body["finished_at"] is not None


def test_the_page_stops_polling_once_the_sweep_failed_a_lost_job(client, lead, ranked, settings):
    lost = queued_job(ranked, lead)
    client.force_login(lead)
    assert 'hx-trigger="every 1s"' in client.get(f"/exports/{ranked.pk}/", **HTMX).text

    age(lost, settings.JOB_GIVE_UP_SECONDS + 5)
    sweep()

    fragment = client.get(f"/exports/{ranked.pk}/", **HTMX).text
    assert 'hx-trigger="every 1s"' not in fragment
    assert "never picked up by a worker" in fragment


# --- a worker killed mid-export -----------------------------------------------------------


def test_a_redelivered_task_retakes_a_job_whose_worker_went_silent_and_finishes_it(
    lead, ranked, settings, export_folder
):
    job = queued_job(ranked, lead)
    assert job_claim(ExportJob, job_id=job.pk)  # a worker took it, staged some rows…
    left_behind(job, attempt=1)
    age(job, settings.JOB_STALE_SECONDS + 5, field="heartbeat_at")  # …and was killed

    summary = export_job_run_task.delay(job.pk).get()  # the message, delivered again

    job.refresh_from_db()
    assert summary["status"] == job.status == "done"
    assert job.attempts == 2 and job.error == "" and job.rows == 12 * 2 * 3
    assert (export_folder / job.file.name).exists()
    assert partial_files(job) == []  # the killed attempt's file went too


def test_a_second_delivery_while_the_worker_is_alive_does_not_run_the_job_twice(lead, ranked):
    job = queued_job(ranked, lead)
    assert job_claim(ExportJob, job_id=job.pk)

    summary = export_job_run_task.delay(job.pk).get()

    job.refresh_from_db()
    assert summary["skipped"] is True
    assert job.status == "running" and job.attempts == 1


def test_a_job_whose_worker_was_lost_too_often_is_failed_with_the_reason(lead, ranked, settings):
    job = queued_job(ranked, lead)
    ExportJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, attempts=MAX_ATTEMPTS)
    age(job, settings.JOB_STALE_SECONDS + 5, field="heartbeat_at")

    summary = export_job_run_task.delay(job.pk).get()

    job.refresh_from_db()
    assert summary["skipped"] is True
    assert job.status == "failed"
    assert job.error == f"abandoned: its worker was lost {MAX_ATTEMPTS} times"
    assert not job.file


def test_the_sweep_fails_a_silent_job_and_removes_its_partial_files(lead, ranked, settings):
    silent = queued_job(ranked, lead, params={"test_fraction": 0.5})
    alive = queued_job(ranked, lead)
    for job in (silent, alive):
        assert job_claim(ExportJob, job_id=job.pk)
    for part in ("all", "train", "test"):
        left_behind(silent, attempt=1, part=part)
    left_behind(alive, attempt=1)
    age(silent, settings.JOB_GIVE_UP_SECONDS + 5, field="heartbeat_at")

    swept = sweep()

    silent.refresh_from_db()
    assert swept["exports.ExportJob"] == 1
    assert silent.status == "failed" and silent.error == "abandoned: its worker stopped responding"
    assert partial_files(silent) == []
    assert partial_files(alive) == [f"export-{alive.pk}-1-all.partial"]
    assert ExportJob.objects.get(pk=alive.pk).status == "running"


# --- a job given up while its worker still runs ---------------------------------------------


def test_a_job_the_sweep_gave_up_stops_at_its_next_heartbeat_and_leaves_no_files(
    lead, ranked, monkeypatch, export_folder
):
    job = queued_job(ranked, lead, strategy="consensus", params={"test_fraction": 0.3})
    consensus = vars(batches)["consensus_ranking"]
    calls = []

    def slow_then_given_up(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # meanwhile, the sweep decided the worker was lost
            job_fail(ExportJob, job_id=job.pk, reason="abandoned: its worker stopped responding")
        return consensus(*args, **kwargs)

    monkeypatch.setattr(selectors, "PROMPT_BATCH_SIZE", 4)
    monkeypatch.setattr(batches, "consensus_ranking", slow_then_given_up)

    summary = services.export_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert summary["lost"] is True and summary["status"] == "failed"
    assert job.error == "abandoned: its worker stopped responding" and not job.file
    assert len(calls) == 4  # the first batch only
    assert not [path for path in export_folder.rglob("*") if path.is_file()]


def test_a_slow_worker_whose_job_was_retaken_neither_beats_nor_finishes_it(
    lead, ranked, monkeypatch, export_folder
):
    job = queued_job(ranked, lead, strategy="consensus")
    consensus = vars(batches)["consensus_ranking"]
    calls = []

    def retaken_meanwhile(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # another worker retook the job while this one was stalled
            ExportJob.objects.filter(pk=job.pk).update(attempts=F("attempts") + 1)
        return consensus(*args, **kwargs)

    monkeypatch.setattr(selectors, "PROMPT_BATCH_SIZE", 4)
    monkeypatch.setattr(batches, "consensus_ranking", retaken_meanwhile)

    summary = services.export_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert summary["lost"] is True
    assert job.status == "running" and job.attempts == 2 and job.rows == 0  # the other's now
    assert not [path for path in export_folder.rglob("*") if path.is_file()]


# --- the broker is down -------------------------------------------------------------------
# With real commits, as in production: the job is sent when the service's transaction
# commits, before the view answers.


@pytest.mark.django_db(transaction=True)
def test_creating_an_export_while_the_broker_is_down_answers_503_with_the_job_failed(
    api_for, engineer, ranked
):
    with broker_refusing():
        response = api_for(engineer).post(
            f"/api/projects/{ranked.pk}/exports/", {"format": "openai"}, format="json"
        )

    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "not_queued" and "could not queue the export job" in body["detail"]
    job = ExportJob.objects.get()
    assert job.status == "failed" and job.finished_at
    assert job.error.startswith("could not queue the job: OperationalError")
    assert not ExportJob.objects.filter(status__in=["queued", "running"]).exists()


@pytest.mark.django_db(transaction=True)
def test_the_page_shows_an_export_the_broker_refused_as_failed(client, lead, ranked):
    client.force_login(lead)
    data = {
        "format": "trl",
        "strategy": "all_pairs",
        "container": "jsonl",
        "min_agreement": "0",
        "min_raters": "1",
        "test_fraction": "0",
        "seed": "0",
    }

    with broker_refusing():
        response = client.post(f"/exports/{ranked.pk}/", data, **HTMX)

    assert response.status_code == 200
    assert 'data-status="failed"' in response.text and "could not queue the job" in response.text
    assert 'hx-trigger="every 1s"' not in response.text


# --- a file missing from storage ------------------------------------------------------------


@pytest.fixture
def file_lost(lead, ranked, export_folder) -> ExportJob:
    """A done export whose file storage lost (removed by hand, a volume not mounted)."""
    job = queued_job(ranked, lead)
    services.export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "done"
    exports_storage().delete(job.file.name or "")
    return job


@pytest.mark.parametrize("endpoint", ["download", "preview"])
def test_a_file_missing_from_storage_is_a_json_410_naming_the_remedy(
    api_for, engineer, file_lost, endpoint
):
    response = api_for(engineer).get(f"/api/exports/{file_lost.pk}/{endpoint}/")

    assert response.status_code == 410
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "file_missing" and "create the export again" in body["detail"]


def test_the_preview_page_says_the_file_is_missing(client, lead, file_lost):
    client.force_login(lead)

    response = client.get(f"/exports/{file_lost.project_id}/{file_lost.pk}/preview/")

    assert response.status_code == 200
    assert "missing from storage" in response.text


def test_every_sweep_removes_staged_files_no_running_attempt_is_writing(lead, ranked):
    done, failed, running = (queued_job(ranked, lead) for _ in range(3))
    for job in (done, failed, running):
        assert job_claim(ExportJob, job_id=job.pk)
    ExportJob.objects.filter(pk=done.pk).update(status="done")
    ExportJob.objects.filter(pk=failed.pk).update(status="failed")
    ExportJob.objects.filter(pk=running.pk).update(attempts=2)  # retaken once
    for job in (done, failed):
        left_behind(job, attempt=1)
    left_behind(running, attempt=1)  # the lost first attempt's
    left_behind(running, attempt=2)  # the live attempt's: kept
    left_behind(ExportJob(pk=987654), attempt=1)  # a job deleted since

    swept = sweep()

    assert swept["exports.ExportJob.cleaned"] == 4
    assert partial_files(done) == partial_files(failed) == []
    assert partial_files(running) == [f"export-{running.pk}-2-all.partial"]
    assert sweep()["exports.ExportJob.cleaned"] == 0
