"""The dataset card and the archive over the API and on the exports page; `datasets` loads the
unzipped archive through the card's own `configs`."""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import hashlib
import io
import zipfile
from typing import Any

import pytest

from exports.formats import SOFT_LABEL_COLUMNS, format_spec, split_for_prompt
from exports.models import ExportJob
from tests.exports.rated import CONTAINERS, export
from tests.exports.test_card import FRONT_KEYS, split_card

pytestmark = pytest.mark.django_db


def both_sides_seed(project) -> int:
    """A seed that puts the project's two prompts on different sides of a 50 % split."""
    prompt_ids = list(project.prompts.values_list("id", flat=True))
    return next(
        seed
        for seed in range(1000)
        if len({split_for_prompt(prompt_id, seed, 0.5) for prompt_id in prompt_ids}) == 2
    )


def get_archive(client, job_id) -> tuple[bytes, Any]:
    response = client.get(f"/api/exports/{job_id}/archive/", HTTP_ACCEPT="application/zip")
    return b"".join(response.streaming_content), response


def test_the_card_downloads_as_readme_with_its_sha256(api_for, engineer, rated):
    job = export(rated, engineer, params={"soft_labels": True})
    client = api_for(engineer)

    response = client.get(f"/api/exports/{job.pk}/card/", HTTP_ACCEPT="text/markdown")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="README.md"'
    assert response.content.decode() == job.card
    assert response["X-Content-SHA256"] == hashlib.sha256(response.content).hexdigest()
    front, _ = split_card(response.content.decode())
    assert set(front) == FRONT_KEYS
    body = client.get(f"/api/exports/{job.pk}/").json()
    assert body["card_url"] == f"/api/exports/{job.pk}/card/"
    assert body["archive_url"] == f"/api/exports/{job.pk}/archive/"
    listed = client.get(f"/api/projects/{rated.pk}/exports/").json()
    assert [job["card_url"] for job in listed] == [body["card_url"]]


def test_others_cannot_read_the_card_or_the_archive(api_for, rater, outsider, rated, engineer):
    job = export(rated, engineer)

    for user in (rater, outsider):
        for part in ("card", "archive"):
            response = api_for(user).get(f"/api/exports/{job.pk}/{part}/")
            assert response.status_code == 404, (user, part)
            assert response.json()["code"] == "not_found"


def test_a_job_not_done_or_made_before_cards_has_none(api_for, engineer, rated):
    queued = ExportJob.objects.create(project=rated, created_by=engineer)
    older = export(rated, engineer)
    ExportJob.objects.filter(pk=older.pk).update(card="")
    client = api_for(engineer)

    not_ready = client.get(f"/api/exports/{queued.pk}/card/")
    no_card = client.get(f"/api/exports/{older.pk}/card/")

    assert not_ready.status_code == 409 and not_ready.json()["code"] == "not_ready"
    assert no_card.status_code == 409 and no_card.json()["code"] == "no_card"
    assert client.get(f"/api/exports/{older.pk}/archive/").json()["code"] == "no_card"
    assert client.get(f"/api/exports/{older.pk}/").json()["card_url"] is None


def test_the_card_stays_when_the_files_are_deleted_but_the_archive_goes(
    api_for, lead, engineer, rated
):
    job = export(rated, engineer)
    client = api_for(lead)

    assert client.delete(f"/api/exports/{job.pk}/file/").status_code == 200

    assert client.get(f"/api/exports/{job.pk}/card/").content.decode() == job.card
    gone = client.get(f"/api/exports/{job.pk}/archive/")
    assert gone.status_code == 409 and gone.json()["code"] == "file_deleted"
    body = client.get(f"/api/exports/{job.pk}/").json()
    assert body["card_url"] and body["archive_url"] is None


def test_a_missing_data_file_answers_410_before_the_archive_starts(
    api_for, engineer, rated, export_folder
):
    job = export(rated, engineer)
    (export_folder / job.file.name).unlink()

    response = api_for(engineer).get(f"/api/exports/{job.pk}/archive/")

    assert response.status_code == 410 and response.json()["code"] == "file_missing"


def test_the_archive_holds_the_card_and_the_split_files_and_is_the_same_twice(
    api_for, engineer, rated, export_folder
):
    params = {"test_fraction": 0.5, "seed": both_sides_seed(rated)}
    job = export(rated, engineer, format="trl", container="jsonl.gz", params=params)
    client = api_for(engineer)

    data, response = get_archive(client, job.pk)
    again, _ = get_archive(client, job.pk)

    assert response["Content-Type"] == "application/zip"
    assert data == again
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.namelist() == ["README.md", "data/train.jsonl.gz", "data/test.jsonl.gz"]
    assert archive.read("README.md").decode() == job.card
    for split in ("train", "test"):
        stored = (export_folder / job.splits[split]["file"]).read_bytes()
        assert archive.read(f"data/{split}.jsonl.gz") == stored
        assert hashlib.sha256(stored).hexdigest() == job.splits[split]["sha256"]
    assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


@pytest.mark.parametrize("container", CONTAINERS)
def test_datasets_loads_the_unzipped_archive_through_the_card_s_configs(
    api_for, engineer, rated, tmp_path, container
):
    import datasets
    import yaml

    params = {"test_fraction": 0.5, "seed": both_sides_seed(rated), "soft_labels": True}
    job = export(rated, engineer, format="trl-reward", container=container, params=params)
    data, _ = get_archive(api_for(engineer), job.pk)
    folder = tmp_path / "dataset"
    zipfile.ZipFile(io.BytesIO(data)).extractall(folder)

    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf-cache"))

    assert set(loaded) == {"train", "test"}
    assert loaded["train"].num_rows == job.splits["train"]["rows"]
    assert loaded["test"].num_rows == job.splits["test"]["rows"]
    names = [column.name for column in format_spec("trl-reward").columns_with(True, True)]
    assert loaded["train"].column_names == names
    assert {column.name for column in SOFT_LABEL_COLUMNS} <= set(names)
    assert loaded["test"].features["chosen_votes"].dtype == "int64"
    card = (folder / "README.md").read_text()
    front = yaml.safe_load(card.split("\n---\n")[0].removeprefix("---\n"))
    assert set(front) == FRONT_KEYS
    assert front["configs"][0]["data_files"] == [
        {"split": "train", "path": f"data/train.{container}"},
        {"split": "test", "path": f"data/test.{container}"},
    ]


def test_the_exports_page_links_the_card_and_the_archive(client, lead, rated, engineer):
    job = export(rated, engineer)
    client.force_login(lead)

    page = client.get(f"/exports/{rated.pk}/").text

    assert f'href="/api/exports/{job.pk}/card/" download="README.md" data-card' in page
    assert f'href="/api/exports/{job.pk}/archive/" download data-archive' in page
