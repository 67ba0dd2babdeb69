"""The `red-team` format through export jobs (`POST /api/projects/{id}/exports/`): every
container, splits, byte-identical reruns, read back by `datasets`; refused for other kinds."""

from __future__ import annotations

import hashlib
import json
import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from exports.models import ExportJob
from labeling import services as labeling_services
from tests.authoring.redteam.helpers import labelled_attempt
from tests.exports.rated import CONTAINERS

datasets = pytest.importorskip("datasets")
pytestmark = pytest.mark.django_db


def _create(api, project, **body):
    return api.post(
        f"/api/projects/{project.pk}/exports/", {"format": "red-team", **body}, format="json"
    )


def _run(api, project, django_capture_on_commit_callbacks, **body) -> ExportJob:
    """Created through the API; the job runs in process when the request commits."""
    with django_capture_on_commit_callbacks(execute=True):
        created = _create(api, project, **body)
    assert created.status_code == 202, created.content
    return ExportJob.objects.get(pk=created.json()["id"])


def _file(api, job_id: int) -> bytes:
    response = api.get(f"/api/exports/{job_id}/download/")
    assert response.status_code == 200, response
    return b"".join(response.streaming_content)


@pytest.mark.parametrize("container", CONTAINERS)
def test_a_red_team_export_job_in_each_container(
    api_for, red_project, rater, rater2, lead, container, tmp_path,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    labelled_attempt(red_project, rater, severity=3)
    labelled_attempt(red_project, rater2, severity=1)
    api = api_for(lead)
    job = _run(api, red_project, django_capture_on_commit_callbacks, container=container)
    assert job.status == "done", job.error
    assert job.rows == 2
    content = _file(api, job.pk)
    assert hashlib.sha256(content).hexdigest() == job.sha256
    path = tmp_path / f"export.{container}"
    path.write_bytes(content)
    rows = datasets.load_dataset(
        "parquet" if container == "parquet" else "json",
        data_files=str(path),
        split="train",
        cache_dir=str(tmp_path / "hf-cache"),
    )
    assert sorted(row["severity"] for row in rows) == [1, 3]
    assert all(row["brief"]["category"] == "weapons" for row in rows)
    assert all(message["role"] in ("user", "assistant") for message in rows[0]["messages"])
    again = _run(api, red_project, django_capture_on_commit_callbacks, container=container)
    assert again.sha256 == job.sha256  # same data, same parameters → same bytes


def test_the_job_equals_the_streamed_download(
    api_for, red_project, rater, lead, django_capture_on_commit_callbacks
):
    labelled_attempt(red_project, rater, severity=2)
    api = api_for(lead)
    job_id = _run(api, red_project, django_capture_on_commit_callbacks).pk
    streamed = api.get(f"/api/projects/{red_project.pk}/exports/records/red-team/")
    assert _file(api, job_id) == b"".join(streamed.streaming_content)
    assert json.loads(_file(api, job_id).splitlines()[0])["severity"] == 2


def test_splits_keep_each_attempt_on_one_side(
    api_for, red_project, rater, rater2, lead, django_capture_on_commit_callbacks
):
    for labeller in (rater, rater2):
        labelled_attempt(red_project, labeller, severity=4)
    api = api_for(lead)
    job = _run(api, red_project, django_capture_on_commit_callbacks, test_fraction=0.5, seed=3)
    assert job.status == "done", job.error
    assert job.splits["train"]["rows"] + job.splits["test"]["rows"] == job.rows == 2


def test_the_format_is_refused_for_another_kind_and_pair_options_are_named(
    api_for, red_project, lead
):
    api = api_for(lead)
    ranking = labeling_services.project_create(creator=lead, name="Ranking")
    other = _create(api, ranking)
    assert other.status_code == 400
    assert other.json()["field"] == "format"
    ties = _create(api, red_project, include_ties=True)
    assert ties.status_code == 400
    assert ties.json()["field"] == "include_ties"
    strategy = _create(api, red_project, strategy="best_vs_worst")
    assert strategy.status_code == 400
    assert strategy.json()["field"] == "strategy"
    assert ExportJob.objects.count() == 0
