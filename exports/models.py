"""Export jobs: the parameters asked for, their progress and the file they produced.

The lifecycle (status, claim, heartbeat, finish, fail, sweep) is `core.jobs.Job`'s; the
format choices come from the format registry (`exports.formats`).
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.db import models
from django.db.models import Q

from core.jobs import Job, JobStatus
from exports.formats import DEFAULT_FORMAT, EXPORT_FORMAT_CHOICES, EXPORT_FORMAT_NAMES
from labeling.models import Project


class PairStrategy(models.TextChoices):
    ALL_PAIRS = "all_pairs", "All pairs of each ranking"
    BEST_VS_REST = "best_vs_rest", "Best vs rest"
    BEST_VS_WORST = "best_vs_worst", "Best vs worst"
    CONSENSUS = "consensus", "Consensus ranking"


class Container(models.TextChoices):
    JSONL = "jsonl", "JSON Lines"
    JSONL_GZ = "jsonl.gz", "gzip JSON Lines"
    PARQUET = "parquet", "Parquet"


def exports_storage() -> Storage:
    """The storage export files live in, looked up on every call.

    Read and write files through this, not `ExportJob.file.storage`: a FileField evaluates
    its storage callable once at import, so it would miss a changed STORAGES setting.
    """
    return storages["exports"]


class ExportJob(Job):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="export_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    format = models.CharField(max_length=32, choices=EXPORT_FORMAT_CHOICES, default=DEFAULT_FORMAT)
    strategy = models.CharField(max_length=32, choices=PairStrategy.choices, default="all_pairs")
    container = models.CharField(max_length=16, choices=Container.choices, default="jsonl")
    params = models.JSONField(default=dict, blank=True, help_text="Filters and split options.")
    rows = models.PositiveBigIntegerField(default=0)
    rows_estimated = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    size_bytes = models.PositiveBigIntegerField(default=0)
    file = models.FileField(storage=exports_storage, upload_to="exports/", blank=True)
    splits = models.JSONField(
        default=dict,
        blank=True,
        help_text='Per split: {"train": {"rows", "file", "sha256", "size_bytes"}, "test": …}; '
        "file, sha256 and size only when the export is split into files.",
    )
    prompts = models.PositiveIntegerField(default=0, help_text="Prompts with at least one row.")
    last_ranking_id = models.BigIntegerField(
        default=0, help_text="Newest ranking the export could see: its snapshot of the data."
    )
    exported_prompt_ids = models.BinaryField(
        blank=True,
        default=b"",
        help_text="Prompt ids this export and the exports it continued have covered, packed; "
        "what an incremental export leaves out.",
    )
    timings = models.JSONField(
        default=dict, blank=True, help_text="Seconds spent reading, building, writing, storing."
    )
    card = models.TextField(
        blank=True,
        default="",
        help_text="The dataset card (README.md) made with the files: Hugging Face metadata, "
        "how the data was collected, each file's sha256 (`exports.card`).",
    )
    file_deleted_at = models.DateTimeField(null=True, blank=True)
    file_deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=JobStatus.values), name="export_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(format__in=EXPORT_FORMAT_NAMES), name="export_format_valid"
            ),
            models.CheckConstraint(
                condition=Q(strategy__in=PairStrategy.values), name="export_strategy_valid"
            ),
            models.CheckConstraint(
                condition=Q(container__in=Container.values), name="export_container_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.status})"

    @property
    def has_file(self) -> bool:
        return self.status == JobStatus.DONE and bool(self.file)

    @property
    def progress(self) -> float:
        """Share done, 0..1: rows written over the estimate, capped below 1 until done."""
        if self.status == JobStatus.DONE:
            return 1.0
        if not self.rows_estimated:
            return 0.0
        return min(self.rows / self.rows_estimated, 0.99)

    @property
    def split_names(self) -> list[str]:
        """Splits with a file of their own (empty when the export is not split)."""
        return [name for name in ("train", "test") if self.splits.get(name, {}).get("file")]
