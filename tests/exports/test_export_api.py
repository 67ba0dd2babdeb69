from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from exports import formats, services
from exports.models import ExportJob
from exports.services import reading
from labeling import services as labeling_services
from rankings.rating.services import ranking_submit

pytestmark = pytest.mark.django_db


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
    # 5 prompts x 2 raters x 3 pairs (K=3, no ties)
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


def test_a_failed_job_reports_its_error(engineer, ranked, monkeypatch, export_folder):
    job = ExportJob.objects.create(
        project=ranked, created_by=engineer, format="trl", params=services.export_params_clean({})
    )

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(formats.ExportFiles, "flush", explode)
    summary = services.export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert summary["status"] == job.status == "failed"
    assert job.error == "RuntimeError: disk full"
    assert job.finished_at is not None and not job.file
    assert not [path for path in export_folder.rglob("*") if path.is_file()]


def test_running_a_job_twice_does_nothing_the_second_time(engineer, ranked):
    job = ExportJob.objects.create(
        project=ranked, created_by=engineer, params=services.export_params_clean({})
    )
    assert services.export_job_run(job_id=job.pk)["rows"] == 30
    assert services.export_job_run(job_id=job.pk)["skipped"] is True


# --- splits, previews, file deletion, streaming, schema -----------------------------------


def test_split_downloads_serve_each_split_file_with_its_sha256(
    api_for, engineer, ranked, django_capture_on_commit_callbacks
):
    client = api_for(engineer)
    created = create_export(
        client, ranked, django_capture_on_commit_callbacks, test_fraction=0.5, seed=1
    ).json()
    job = client.get(f"/api/exports/{created['id']}/").json()

    seen = {}
    for split in ("train", "test"):
        body, raw = download(client, job["id"], split=split)
        assert raw["X-Content-SHA256"] == hashlib.sha256(body).hexdigest()
        assert job["splits"][split]["sha256"] == raw["X-Content-SHA256"]
        assert f"-{split}.jsonl" in raw["Content-Disposition"]
        seen[split] = [json.loads(line) for line in body.decode().splitlines()]
    assert len(seen["train"]) == job["splits"]["train"]["rows"]
    assert len(seen["test"]) == job["splits"]["test"]["rows"]
    assert job["splits"]["test"]["download_url"].endswith("?split=test")
    assert client.get(f"/api/exports/{job['id']}/download/", {"split": "dev"}).status_code == 400


def test_unsplit_export_serves_everything_as_train_and_refuses_test(
    api_for, engineer, ranked, django_capture_on_commit_callbacks
):
    client = api_for(engineer)
    job_id = create_export(client, ranked, django_capture_on_commit_callbacks).json()["id"]

    body, _ = download(client, job_id, split="train")
    refused = client.get(f"/api/exports/{job_id}/download/", {"split": "test"})

    assert len(body.splitlines()) == 30
    assert refused.status_code == 400 and refused.json()["field"] == "split"


def test_job_detail_shows_progress_estimate_timings_and_splits(
    api_for, engineer, ranked, django_capture_on_commit_callbacks
):
    client = api_for(engineer)
    job_id = create_export(client, ranked, django_capture_on_commit_callbacks).json()["id"]

    job = client.get(f"/api/exports/{job_id}/").json()

    assert job["progress"] == 1.0 and job["rows_estimated"] == 30 and job["prompts"] == 5
    assert job["splits"] == {"test": {"rows": 0}, "train": {"rows": 30}}
    assert job["timings"]["total"] >= 0 and job["created_by"] == "engineer"
    assert job["preview_url"] == f"/api/exports/{job_id}/preview/"
    assert job["last_ranking_id"] > 0 and job["params"]["min_raters"] == 1
    listed = client.get(f"/api/projects/{ranked.pk}/exports/").json()
    assert [item["id"] for item in listed] == [job_id]


@pytest.mark.parametrize("container", ["jsonl", "jsonl.gz", "parquet"])
def test_preview_returns_the_first_rows(
    api_for, engineer, ranked, django_capture_on_commit_callbacks, container
):
    client = api_for(engineer)
    job_id = create_export(
        client, ranked, django_capture_on_commit_callbacks, container=container
    ).json()["id"]

    rows = client.get(f"/api/exports/{job_id}/preview/", {"rows": 3}).json()["rows"]

    assert len(rows) == 3 and rows[0]["prompt"].startswith("Question number 0")
    assert client.get(f"/api/exports/{job_id}/preview/", {"rows": 500}).status_code == 400


def test_a_lead_deletes_files_and_the_record_stays(
    api_for, lead, engineer, rater, outsider, ranked, django_capture_on_commit_callbacks
):
    job_id = create_export(api_for(engineer), ranked, django_capture_on_commit_callbacks).json()[
        "id"
    ]
    url = f"/api/exports/{job_id}/file/"
    assert api_for(engineer).delete(url).status_code == 403
    assert api_for(rater).delete(url).status_code == 404
    assert api_for(outsider).delete(url).status_code == 404

    with django_capture_on_commit_callbacks(execute=True):
        deleted = api_for(lead).delete(url)

    assert deleted.status_code == 200
    body = deleted.json()
    assert body["file_deleted_at"] and body["download_url"] is None and body["sha256"]
    gone = api_for(engineer).get(f"/api/exports/{job_id}/download/")
    assert gone.status_code == 409 and gone.json()["code"] == "file_deleted"
    assert api_for(lead).delete(url).status_code == 409
    assert api_for(engineer).get(f"/api/exports/{job_id}/").json()["status"] == "done"


def test_stream_sends_small_exports_straight_to_the_client(api_for, engineer, ranked):
    client = api_for(engineer)

    response = client.get(f"/api/projects/{ranked.pk}/exports/stream/", {"format": "trl-reward"})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/jsonl"
    lines = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert len(lines) == 30
    # Omitted booleans keep their defaults (metadata on), unlike an HTML form.
    assert lines[0]["margin"] == 1.0 and "prompt_id" in lines[0]


def test_stream_takes_filters_limit_and_gzip(api_for, engineer, ranked):
    client = api_for(engineer)

    response = client.get(
        f"/api/projects/{ranked.pk}/exports/stream/",
        {"container": "jsonl.gz", "with_metadata": "false", "limit": "4", "format": "hh-rlhf"},
    )

    lines = gzip.decompress(b"".join(response.streaming_content)).decode().splitlines()
    assert len(lines) == 4 and set(json.loads(lines[0])) == {"chosen", "rejected"}


def test_stream_refuses_parquet_big_exports_and_bad_input(
    api_for, engineer, rater, outsider, ranked, monkeypatch
):
    client = api_for(engineer)
    url = f"/api/projects/{ranked.pk}/exports/stream/"
    monkeypatch.setattr(reading, "STREAM_MAX_ROWS", 10)

    too_big = client.get(url)
    parquet = client.get(url, {"container": "parquet"})
    bad = client.get(url, {"min_agreement": "lots"})

    assert too_big.status_code == 413 and too_big.json()["code"] == "too_large"
    assert parquet.status_code == 400 and parquet.json()["field"] == "container"
    assert bad.status_code == 400 and bad.json()["field"] == "min_agreement"
    assert api_for(rater).get(url).status_code == 403
    assert api_for(outsider).get(url).status_code == 404


def test_anonymous_clients_are_refused(client, ranked):
    assert client.get(f"/api/projects/{ranked.pk}/exports/").status_code in (401, 403)
    assert client.get(f"/api/projects/{ranked.pk}/exports/stream/").status_code in (401, 403)


def test_create_accepts_every_filter(api_for, engineer, ranked, django_capture_on_commit_callbacks):
    client = api_for(engineer)
    body = {
        "format": "trl-conversational",
        "strategy": "consensus",
        "container": "parquet",
        "min_agreement": 0.5,
        "min_raters": 2,
        "exclude_flagged_raters": True,
        "exclude_excluded_raters": False,
        "include_gold": True,
        "only_complete": True,
        "created_after": "2020-01-01T00:00:00Z",
        "test_fraction": 0.2,
        "seed": 9,
    }

    response = create_export(client, ranked, django_capture_on_commit_callbacks, **body)

    assert response.status_code == 202, response.json()
    job = ExportJob.objects.get(pk=response.json()["id"])
    assert job.status == "done", job.error
    assert job.params["created_after"] == "2020-01-01T00:00:00+00:00"
    assert job.params["exclude_excluded_raters"] is False and job.params["only_complete"]


def test_schema_documents_every_endpoint_with_an_example_per_format(client):
    # JSON: the same document as the default YAML, without seconds of pure-Python parsing.
    schema = client.get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    for path in (
        "/api/projects/{project_id}/exports/",
        "/api/projects/{project_id}/exports/stream/",
        "/api/exports/{export_id}/",
        "/api/exports/{export_id}/download/",
        "/api/exports/{export_id}/file/",
        "/api/exports/{export_id}/preview/",
        "/api/exports/{export_id}/card/",
        "/api/exports/{export_id}/archive/",
    ):
        assert path in paths, path
    assert (
        "text/markdown"
        in paths["/api/exports/{export_id}/card/"]["get"]["responses"]["200"]["content"]
    )
    create = paths["/api/projects/{project_id}/exports/"]["post"]
    examples = create["requestBody"]["content"]["application/json"]["examples"]
    names = {example["value"]["format"] for example in examples.values()}
    assert names == {
        "trl",
        "trl-conversational",
        "trl-reward",
        "trl-unpaired",
        "openai",
        "hh-rlhf",
        "ultrafeedback",
    }
    stream = paths["/api/projects/{project_id}/exports/stream/"]["get"]
    assert len(stream["responses"]["200"]["content"]["application/jsonl"]["examples"]) == 7
    names = {parameter["name"] for parameter in stream["parameters"]}
    assert {"format", "min_agreement", "since_export", "soft_labels", "split", "limit"} <= names
