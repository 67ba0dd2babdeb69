"""Writes for exports: create a job, run it in streaming batches, store the file."""

from __future__ import annotations

import tempfile
from typing import Any

from django.core.files import File
from django.db import transaction
from django.utils import timezone

from exports import formats, pairs, selectors
from exports.models import Container, ExportFormat, ExportJob, ExportStatus, PairStrategy
from labeling.errors import InvalidInput
from labeling.models import Project

AVAILABLE_STRATEGIES = {
    PairStrategy.ALL_PAIRS,
    PairStrategy.BEST_VS_REST,
    PairStrategy.BEST_VS_WORST,
}
AVAILABLE_CONTAINERS = {Container.JSONL, Container.JSONL_GZ}
PARAM_DEFAULTS: dict[str, Any] = {
    "include_gold": False,
    "include_ties": False,
    "min_raters": 1,
    "with_metadata": True,
    "test_fraction": 0.0,
    "seed": 0,
}


def export_params_clean(params: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in, so equal requests store equal parameters."""
    cleaned = {**PARAM_DEFAULTS, **{k: v for k, v in params.items() if v is not None}}
    if not 0.0 <= float(cleaned["test_fraction"]) < 1.0:
        raise InvalidInput("test_fraction must be at least 0 and below 1", field="test_fraction")
    return cleaned


def export_job_create(
    *,
    project: Project,
    created_by,
    format: str = ExportFormat.TRL,
    strategy: str = PairStrategy.ALL_PAIRS,
    container: str = Container.JSONL,
    params: dict[str, Any] | None = None,
) -> ExportJob:
    if strategy not in AVAILABLE_STRATEGIES:
        raise InvalidInput(
            f"strategy {strategy!r} is not available yet; use one of "
            f"{sorted(str(s) for s in AVAILABLE_STRATEGIES)}",
            field="strategy",
        )
    if container not in AVAILABLE_CONTAINERS:
        raise InvalidInput(
            f"container {container!r} is not available yet; use jsonl or jsonl.gz",
            field="container",
        )
    from exports import tasks

    with transaction.atomic():
        job = ExportJob.objects.create(
            project=project,
            created_by=created_by,
            format=format,
            strategy=strategy,
            container=container,
            params=export_params_clean(params or {}),
        )
        tasks.export_job_run_task.delay_on_commit(job.pk)
    return job


def export_job_claim(*, job_id: int) -> bool:
    claimed = ExportJob.objects.filter(pk=job_id, status=ExportStatus.QUEUED).update(
        status=ExportStatus.RUNNING, started_at=timezone.now()
    )
    return claimed == 1


def export_job_run(*, job_id: int) -> dict[str, Any]:
    if not export_job_claim(job_id=job_id):
        job = ExportJob.objects.get(pk=job_id)
        return {"job_id": job_id, "status": job.status, "skipped": True}
    job = ExportJob.objects.select_related("project").get(pk=job_id)
    try:
        result = _write_export_file(job)
    except Exception as error:
        ExportJob.objects.filter(pk=job_id).update(
            status=ExportStatus.FAILED,
            error=f"{type(error).__name__}: {error}"[:4000],
            finished_at=timezone.now(),
        )
        raise
    return {"job_id": job_id, "status": ExportStatus.DONE, "rows": result.rows}


def export_rows(*, job: ExportJob):
    """Every output row of the job, prompt by prompt in id order (deterministic)."""
    params = job.params
    filters = selectors.ExportFilters(
        include_gold=bool(params["include_gold"]), min_raters=int(params["min_raters"])
    )
    for batch in selectors.prompt_batches(project=job.project, filters=filters):
        for prompt, rankings in batch:
            split = formats.split_for_prompt(
                prompt.prompt_id, int(params["seed"]), float(params["test_fraction"])
            )
            for pair in pairs.build_pairs(
                prompt, rankings, job.strategy, include_ties=bool(params["include_ties"])
            ):
                yield from formats.rows_for_pair(
                    job.format, pair, prompt, split, with_metadata=bool(params["with_metadata"])
                )


def _write_export_file(job: ExportJob) -> formats.JsonlResult:
    compress = job.container == Container.JSONL_GZ
    with tempfile.TemporaryFile() as handle:
        result = formats.write_jsonl(export_rows(job=job), handle, compress=compress)
        handle.seek(0)
        name = f"project-{job.project_id}/export-{job.pk}.{job.container}"
        job.file.save(name, File(handle), save=False)
    job.rows, job.sha256, job.size_bytes = result.rows, result.sha256, result.size_bytes
    job.status, job.finished_at = ExportStatus.DONE, timezone.now()
    job.save(update_fields=["file", "rows", "sha256", "size_bytes", "status", "finished_at"])
    return result
