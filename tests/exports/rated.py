"""A small rated project's records and helpers shared by the tests that export it and read
the files back (`rated` in conftest.py ranks them)."""

from __future__ import annotations

from typing import Any

from exports import services
from exports.models import ExportJob

RECORDS: list[dict[str, Any]] = [
    {
        "external_id": "single",
        "prompt": "Name a prime number — any one.",
        "responses": [
            {"text": "7", "model": "m-a"},
            {"text": "Nine.", "model": "m-b"},
            {"text": "2 is the only even prime.", "model": "m-c"},
        ],
    },
    {
        "external_id": "chat",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Capital of France?"},
        ],
        "responses": [
            {"text": "Paris.", "model": "m-a"},
            {"text": "Lyon.", "model": "m-b"},
            {"text": "It is Paris, on the Seine.", "model": "m-c"},
        ],
    },
]
CONTAINERS = ["jsonl", "jsonl.gz", "parquet"]


def export(project, engineer, **kwargs) -> ExportJob:
    job = services.export_job_create(project=project, created_by=engineer, **kwargs)
    services.export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "done", job.error
    return job


def load(job: ExportJob, export_folder, tmp_path, split: str | None = None):
    name = job.file.name if split is None else job.splits[split]["file"]
    builder = "parquet" if job.container == "parquet" else "json"
    import datasets

    return datasets.load_dataset(
        builder,
        data_files=str(export_folder / name),
        split="train",
        cache_dir=str(tmp_path / "hf-cache"),
    )
