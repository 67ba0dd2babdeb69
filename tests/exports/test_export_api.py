from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from exports import services
from exports.models import ExportJob
from labeling import services as labeling_services
from rankings.services import ranking_submit

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def export_folder(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "exports")},
        },
    }
    return tmp_path / "exports"


def rank_everything(project, raters, order=lambda ids: sorted(ids)):
    """Every rater ranks every prompt: responses by ascending id, best first."""
    for rater in raters:
        while assignment := labeling_services.lease_next_assignment(project=project, rater=rater):
            ranking = [[response_id] for response_id in order(assignment.shown_order)]
            ranking_submit(assignment_id=assignment.pk, rater=rater, ranking=ranking)


def download(client, job_id, **query):
    response = client.get(f"/api/exports/{job_id}/download/", query)
    return b"".join(response.streaming_content), response


@pytest.fixture
def ranked(imported, rater, rater2, django_capture_on_commit_callbacks):
    rank_everything(imported, [rater, rater2])
    return imported


def create_export(client, project, captured, **body):
    with captured(execute=True):
        response = client.post(f"/api/projects/{project.pk}/exports/", body, format="json")
    return response


def test_export_job_writes_trl_rows_for_all_pairs(
    api_for, engineer, ranked, django_capture_on_commit_callbacks
):
    client = api_for(engineer)
    response = create_export(client, ranked, django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.json()
    job = client.get(f"/api/exports/{response.json()['id']}/").json()
    assert job["status"] == "done", job
    # 5 prompts × 2 raters × 3 pairs (K=3, no ties)
    assert job["rows"] == 30
    body, raw = download(client, job["id"])
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert len(lines) == 30
    assert hashlib.sha256(body).hexdigest() == job["sha256"] == raw["X-Content-SHA256"]
    first = lines[0]
    assert {"prompt", "chosen", "rejected"} <= set(first)
    assert first["prompt"].startswith("Question number 0")
    # Raters preferred the lower response id, which is "Answer 0" → chosen over "Answer 2" etc.
    assert all(line["chosen_id"] < line["rejected_id"] for line in lines)
    assert all(line["agreement"] == 1.0 and line["n_raters"] == 2 for line in lines)
    assert "rater1" not in body.decode() and "rater2" not in body.decode()


def test_ties_are_dropped_by_default(
    api_for, engineer, imported, rater, django_capture_on_commit_callbacks
):
    rank_everything(imported, [rater], order=lambda ids: ids)
    assignment_ids = []
    for ranking in imported.rankings.all():
        ids = [r for group in ranking.groups for r in group]
        ranking.groups = [[ids[0], ids[1]], [ids[2]]]
        ranking.save()
        assignment_ids.append(ranking.assignment_id)
    client = api_for(engineer)
    job_id = create_export(client, imported, django_capture_on_commit_callbacks).json()["id"]
    assert ExportJob.objects.get(pk=job_id).rows == 5 * 2


def test_same_parameters_over_same_data_give_the_same_file(
    api_for, engineer, ranked, django_capture_on_commit_callbacks
):
    client = api_for(engineer)
    first = create_export(client, ranked, django_capture_on_commit_callbacks, container="jsonl.gz")
    second = create_export(client, ranked, django_capture_on_commit_callbacks, container="jsonl.gz")
    jobs = ExportJob.objects.filter(pk__in=[first.json()["id"], second.json()["id"]])
    assert {job.sha256 for job in jobs} != {""}
    assert len({job.sha256 for job in jobs}) == 1
    body, _ = download(client, first.json()["id"])
    assert len(gzip.decompress(body).decode().splitlines()) == 30


def test_bad_export_parameters_name_the_field(api_for, engineer, ranked):
    client = api_for(engineer)
    bad_format = client.post(
        f"/api/projects/{ranked.pk}/exports/", {"format": "csv"}, format="json"
    )
    assert bad_format.status_code == 400 and bad_format.json()["field"] == "format"
    bad_split = client.post(
        f"/api/projects/{ranked.pk}/exports/", {"test_fraction": 2}, format="json"
    )
    assert bad_split.status_code == 400 and bad_split.json()["field"] == "test_fraction"
    assert not ExportJob.objects.exists()


def test_raters_cannot_create_or_read_exports(
    api_for, rater, engineer, ranked, django_capture_on_commit_callbacks
):
    job_id = create_export(api_for(engineer), ranked, django_capture_on_commit_callbacks).json()[
        "id"
    ]
    client = api_for(rater)
    assert client.post(f"/api/projects/{ranked.pk}/exports/", {}, format="json").status_code == 403
    assert client.get(f"/api/exports/{job_id}/").status_code == 404
    assert client.get(f"/api/exports/{job_id}/download/").status_code == 404


def test_outsiders_cannot_see_exports(
    api_for, outsider, engineer, ranked, django_capture_on_commit_callbacks
):
    job_id = create_export(api_for(engineer), ranked, django_capture_on_commit_callbacks).json()[
        "id"
    ]
    client = api_for(outsider)
    assert client.post(f"/api/projects/{ranked.pk}/exports/", {}, format="json").status_code == 404
    assert client.get(f"/api/exports/{job_id}/").status_code == 404


def test_download_before_done_is_a_409(api_for, engineer, ranked):
    job = ExportJob.objects.create(project=ranked, created_by=engineer)
    response = api_for(engineer).get(f"/api/exports/{job.pk}/download/")
    assert response.status_code == 409


def test_a_failed_job_reports_its_error(engineer, ranked, monkeypatch):
    job = ExportJob.objects.create(
        project=ranked, created_by=engineer, format="trl", params=services.export_params_clean({})
    )

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services.formats, "write_jsonl", explode)
    with pytest.raises(RuntimeError):
        services.export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error == "RuntimeError: disk full"


def test_running_a_job_twice_does_nothing_the_second_time(engineer, ranked):
    job = ExportJob.objects.create(
        project=ranked, created_by=engineer, params=services.export_params_clean({})
    )
    assert services.export_job_run(job_id=job.pk)["rows"] == 30
    assert services.export_job_run(job_id=job.pk)["skipped"] is True
