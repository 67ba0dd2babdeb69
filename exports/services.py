"""Writes for exports: create a job, run it in streaming batches, store, stream, delete files.

One row generator (`export_batches`) feeds both the Celery job, which writes files through
Django's storage API, and the stream-straight-to-client endpoint, so the same parameters
over the same data give the same bytes either way.
"""

from __future__ import annotations

import gc
import logging
import os
import tempfile
import time
import zlib
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import IO, Any

import numpy as np
from django.core.files import File
from django.core.files.storage import Storage
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.errors import Conflict, InvalidInput, RanklabError
from exports import formats, pairs, selectors
from exports.models import (
    Container,
    ExportFormat,
    ExportJob,
    ExportStatus,
    PairStrategy,
    exports_storage,
)
from exports.pairs import Pair, PromptData
from labeling.models import Project
from rankings.consensus import consensus_ranking

logger = logging.getLogger(__name__)

PARAM_DEFAULTS: dict[str, Any] = {
    "include_ties": False,
    "with_metadata": True,
    "min_agreement": 0.0,
    "min_raters": 1,
    "exclude_flagged_raters": False,
    "exclude_excluded_raters": True,
    "include_gold": False,
    "only_complete": False,
    "created_after": None,
    "created_before": None,
    "since_export": None,
    "until_ranking_id": None,
    "test_fraction": 0.0,
    "seed": 0,
}
"""Every export parameter with its default; a job stores all of them, so equal requests
store equal parameters and an export can be repeated from its record."""

BOOLEAN_PARAMS = (
    "include_ties",
    "with_metadata",
    "exclude_flagged_raters",
    "exclude_excluded_raters",
    "include_gold",
    "only_complete",
)
STREAM_MAX_ROWS = 50_000
"""The most rows the stream endpoint sends; bigger exports are jobs."""
PREVIEW_ROWS = 5


class TooLarge(RanklabError):
    status_code = 413
    code = "too_large"


# --- parameters -------------------------------------------------------------------------


def export_params_clean(
    params: dict[str, Any],
    *,
    project: Project | None = None,
    format: str = ExportFormat.TRL,
    strategy: str = PairStrategy.ALL_PAIRS,
    container: str = Container.JSONL,
) -> dict[str, Any]:
    """Defaults filled in and values checked; errors name the offending field."""
    unknown = sorted(set(params) - set(PARAM_DEFAULTS))
    if unknown:
        raise InvalidInput(f"unknown export parameter {unknown[0]!r}", field=unknown[0])
    if format not in ExportFormat.values:
        raise InvalidInput(f"unknown format {format!r}", field="format")
    if strategy not in PairStrategy.values:
        raise InvalidInput(f"unknown strategy {strategy!r}", field="strategy")
    if container not in Container.values:
        raise InvalidInput(f"unknown container {container!r}", field="container")
    cleaned = {**PARAM_DEFAULTS, **{k: v for k, v in params.items() if v is not None}}
    for name in BOOLEAN_PARAMS:
        if not isinstance(cleaned[name], bool):
            raise InvalidInput(f"{name} must be true or false", field=name)
    cleaned["min_agreement"] = _number(cleaned, "min_agreement", float, 0.0, 1.0)
    cleaned["min_raters"] = _number(cleaned, "min_raters", int, 1, 1000)
    cleaned["test_fraction"] = _number(cleaned, "test_fraction", float, 0.0, 0.99)
    cleaned["seed"] = _number(cleaned, "seed", int, 0, 2**63 - 1)
    if cleaned["until_ranking_id"] is not None:
        cleaned["until_ranking_id"] = _number(cleaned, "until_ranking_id", int, 0, 2**63 - 1)
    for name in ("created_after", "created_before"):
        if cleaned[name] is not None:
            cleaned[name] = _timestamp(cleaned[name], name).isoformat()
    if (
        cleaned["created_after"]
        and cleaned["created_before"]
        and cleaned["created_after"] >= cleaned["created_before"]
    ):
        raise InvalidInput("created_before must be after created_after", field="created_before")
    if cleaned["include_ties"]:
        if format == ExportFormat.TRL_UNPAIRED:
            raise InvalidInput(
                "trl-unpaired has no way to express a tie; leave include_ties off",
                field="include_ties",
            )
        if not cleaned["with_metadata"] and format != ExportFormat.TRL_REWARD:
            raise InvalidInput(
                "a tie is only told apart by its margin: keep metadata on or use trl-reward",
                field="include_ties",
            )
    if cleaned["since_export"] is not None:
        since = _number(cleaned, "since_export", int, 1, 2**63 - 1)
        earlier = ExportJob.objects.filter(pk=since, project=project).only("status").first()
        if earlier is None:
            raise InvalidInput(
                "no earlier export of this project has that id", field="since_export"
            )
        if earlier.status != ExportStatus.DONE:
            raise InvalidInput("the earlier export did not finish", field="since_export")
        cleaned["since_export"] = since
    return cleaned


def _number(params: dict[str, Any], name: str, kind: type, low: float, high: float) -> Any:
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInput(f"{name} must be a number", field=name)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number", field=name) from None
    if kind is int and float(value) != number:
        raise InvalidInput(f"{name} must be a whole number", field=name)
    if not low <= number <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}", field=name)
    return number


def _timestamp(value: Any, name: str) -> datetime:
    parsed = value if isinstance(value, datetime) else None
    if parsed is None and isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                parsed = None
    if parsed is None:
        raise InvalidInput(f"{name} must be an ISO 8601 date or time", field=name)
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# --- the row generator ------------------------------------------------------------------


@dataclass(frozen=True)
class ExportSpec:
    """What to export: everything a job's rows depend on."""

    project: Project
    format: str
    strategy: str
    container: str
    params: dict[str, Any]
    skip_prompt_ids: Any = field(default_factory=frozenset)

    @classmethod
    def for_job(cls, job: ExportJob) -> ExportSpec:
        return cls(
            project=job.project,
            format=job.format,
            strategy=job.strategy,
            container=job.container,
            params=job.params,
            skip_prompt_ids=_earlier_prompt_ids(job.params.get("since_export")),
        )

    def filters(self) -> selectors.ExportFilters:
        params = self.params
        return selectors.ExportFilters(
            include_gold=params["include_gold"],
            min_raters=params["min_raters"],
            exclude_flagged_raters=params["exclude_flagged_raters"],
            exclude_excluded_raters=params["exclude_excluded_raters"],
            only_complete=params["only_complete"],
            created_after=_parsed(params["created_after"]),
            created_before=_parsed(params["created_before"]),
            until_ranking_id=params["until_ranking_id"],
            skip_prompt_ids=self.skip_prompt_ids,
        )


def _parsed(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


PromptPairs = tuple[PromptData, list[Pair], str]


@dataclass
class BatchTimer:
    """Seconds spent per phase, summed over batches."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, started: float) -> float:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - started
        return now

    def rounded(self) -> dict[str, float]:
        return {phase: round(seconds, 3) for phase, seconds in self.seconds.items()}


def export_batches(
    spec: ExportSpec, *, timer: BatchTimer | None = None, prefetch: bool = False
) -> Iterator[list[PromptPairs]]:
    """Each batch's prompts with their pairs and split, prompt by prompt in id order.

    Deterministic: prompts in id order, pairs in the order `exports.pairs` defines, the
    split a seeded hash of the prompt id. Prompts left without pairs are dropped.

    With `prefetch` the next batch is read on a background thread (with its own database
    connection) while this one is paired; inside a transaction it is read inline, since
    another connection would not see the transaction's rows.
    """
    timer = timer or BatchTimer()
    params = spec.params
    include_ties = params["include_ties"]
    min_agreement = params["min_agreement"]
    seed, test_fraction = params["seed"], params["test_fraction"]
    batches = selectors.prompt_batches(
        project=spec.project,
        filters=spec.filters(),
        prefetch=prefetch and not transaction.get_connection().in_atomic_block,
    )
    started = time.perf_counter()
    for batch in batches:
        started = timer.add("read", started)
        output: list[PromptPairs] = []
        for prompt, rankings in batch:
            if spec.strategy == PairStrategy.CONSENSUS:
                prompt_pairs = _consensus_pairs(prompt, rankings, include_ties)
            else:
                prompt_pairs = pairs.build_pairs(
                    prompt, rankings, spec.strategy, include_ties=include_ties
                )
            if min_agreement > 0:
                prompt_pairs = [pair for pair in prompt_pairs if pair.agreement >= min_agreement]
            if prompt_pairs:
                split = formats.split_for_prompt(prompt.prompt_id, seed, test_fraction)
                output.append((prompt, prompt_pairs, split))
        started = timer.add("pairs", started)
        yield output
        started = time.perf_counter()


def _consensus_pairs(
    prompt: PromptData, rankings: list[pairs.RankingData], include_ties: bool
) -> list[Pair]:
    ordered = sorted(rankings, key=lambda ranking: ranking.ranking_id)
    result = consensus_ranking([ranking.groups for ranking in ordered])
    scores = {int(response_id): float(score) for response_id, score in result.scores.items()}
    groups = [[int(response_id) for response_id in group] for group in result.groups]
    return pairs.build_consensus_pairs(prompt, ordered, groups, scores, include_ties=include_ties)


def export_rows(*, job: ExportJob) -> Iterator[formats.Row]:
    """Every output row of the job as dicts, in file order (for tests and small reads)."""
    spec = ExportSpec.for_job(job)
    with_metadata = spec.params["with_metadata"]
    for batch in export_batches(spec):
        for prompt, prompt_pairs, split in batch:
            yield from formats.rows_for_pairs(
                spec.format, prompt_pairs, prompt, split, with_metadata=with_metadata
            )


def rows_estimate(spec: ExportSpec) -> int:
    """Rows the export will have at most, from counts (ties and filters only lower it)."""
    size = selectors.export_size(project=spec.project, filters=spec.filters())
    k = max(round(size.responses_per_prompt), 2)
    per_ranking = {
        PairStrategy.ALL_PAIRS: k * (k - 1) // 2,
        PairStrategy.BEST_VS_REST: k - 1,
        PairStrategy.BEST_VS_WORST: 1,
    }
    if spec.strategy == PairStrategy.CONSENSUS:
        pair_count = size.prompts * k * (k - 1) // 2
    else:
        pair_count = size.rankings * per_ranking[PairStrategy(spec.strategy)]
    return pair_count * (2 if spec.format == ExportFormat.TRL_UNPAIRED else 1)


# --- prompt id sets (incremental exports) -----------------------------------------------

_PACKED_PREFIX = b"Z1"


def pack_prompt_ids(prompt_ids: np.ndarray) -> bytes:
    """Sorted unique ids, delta-encoded and compressed (a few bytes per thousand prompts)."""
    ids = np.unique(np.asarray(prompt_ids, dtype=np.int64))
    deltas = np.diff(ids, prepend=np.int64(0)).astype("<i8")
    return _PACKED_PREFIX + zlib.compress(deltas.tobytes(), 6)


def unpack_prompt_ids(packed: bytes | memoryview | None) -> np.ndarray:
    data = bytes(packed or b"")
    if not data:
        return np.zeros(0, dtype=np.int64)
    if not data.startswith(_PACKED_PREFIX):
        raise ValueError("unknown prompt id packing")
    deltas = np.frombuffer(zlib.decompress(data[len(_PACKED_PREFIX) :]), dtype="<i8")
    return np.cumsum(deltas, dtype=np.int64)


class PromptIdSet:
    """Membership tests against a sorted id array, without a Python set per id."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = ids

    def __contains__(self, prompt_id: object) -> bool:
        if not isinstance(prompt_id, int) or not len(self.ids):
            return False
        position = int(np.searchsorted(self.ids, prompt_id))
        return position < len(self.ids) and int(self.ids[position]) == prompt_id

    def __len__(self) -> int:
        return len(self.ids)


def _earlier_prompt_ids(since_export: int | None) -> PromptIdSet:
    if since_export is None:
        return PromptIdSet(np.zeros(0, dtype=np.int64))
    packed = (
        ExportJob.objects.filter(pk=since_export)
        .values_list("exported_prompt_ids", flat=True)
        .first()
    )
    return PromptIdSet(unpack_prompt_ids(packed))


# --- jobs -------------------------------------------------------------------------------


def export_job_create(
    *,
    project: Project,
    created_by,
    format: str = ExportFormat.TRL,
    strategy: str = PairStrategy.ALL_PAIRS,
    container: str = Container.JSONL,
    params: dict[str, Any] | None = None,
) -> ExportJob:
    cleaned = export_params_clean(
        params or {}, project=project, format=format, strategy=strategy, container=container
    )
    from exports import tasks

    with transaction.atomic():
        job = ExportJob.objects.create(
            project=project,
            created_by=created_by,
            format=format,
            strategy=strategy,
            container=container,
            params=cleaned,
        )
        tasks.export_job_run_task.delay_on_commit(job.pk)
    return job


def export_job_claim(*, job_id: int) -> bool:
    """Queued → running with a conditional UPDATE; only the winner runs the job."""
    claimed = ExportJob.objects.filter(pk=job_id, status=ExportStatus.QUEUED).update(
        status=ExportStatus.RUNNING, started_at=timezone.now()
    )
    return claimed == 1


def export_job_run(*, job_id: int) -> dict[str, Any]:
    """Run a queued job to done or failed; a failure is recorded on the job, not raised."""
    if not export_job_claim(job_id=job_id):
        status = ExportJob.objects.filter(pk=job_id).values_list("status", flat=True).first()
        return {"job_id": job_id, "status": status, "skipped": True}
    job = ExportJob.objects.select_related("project").get(pk=job_id)
    try:
        _write_export_files(job)
    except Exception as error:
        logger.exception("export %s failed", job_id)
        ExportJob.objects.filter(pk=job_id).update(
            status=ExportStatus.FAILED,
            error=f"{type(error).__name__}: {error}"[:4000],
            finished_at=timezone.now(),
        )
        return {"job_id": job_id, "status": ExportStatus.FAILED, "error": str(error)[:200]}
    return {"job_id": job_id, "status": ExportStatus.DONE, "rows": job.rows}


def _file_name(job: ExportJob, part: str) -> str:
    suffix = "" if part == formats.ALL else f"-{part}"
    return f"exports/project-{job.project_id}/export-{job.pk}{suffix}.{job.container}"


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while an export runs.

    An export allocates millions of short-lived containers (decoded rows, pairs, encoded
    pieces), which reference counting frees batch by batch; with the default thresholds
    the collector would still walk the young generations every 2,000 allocations and cost
    about a third of the export's CPU time. Memory stays bounded by the batch.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(_GC_THRESHOLD, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


_GC_THRESHOLD = 50_000


def _write_export_files(job: ExportJob) -> None:
    with _fewer_collections():
        _write_export_files_now(job)


def _write_export_files_now(job: ExportJob) -> None:
    started_at = time.perf_counter()
    timer = BatchTimer()
    params = job.params
    if params["until_ranking_id"] is None:
        # Pin the snapshot: rankings arriving while the job runs wait for the next export.
        job.last_ranking_id = selectors.newest_ranking_id(project=job.project)
        params = {**params, "until_ranking_id": job.last_ranking_id}
    else:
        job.last_ranking_id = params["until_ranking_id"]
    spec = replace(ExportSpec.for_job(job), params=params)
    job.rows_estimated = rows_estimate(spec)
    ExportJob.objects.filter(pk=job.pk).update(
        rows_estimated=job.rows_estimated, last_ranking_id=job.last_ranking_id
    )
    timer.add("estimate", started_at)
    split = params["test_fraction"] > 0
    parts = [formats.ALL, formats.TRAIN, formats.TEST] if split else [formats.ALL]
    storage = exports_storage()
    staged = {part: _staged_file(storage) for part in parts}
    exported_ids = array("q")
    try:
        files = formats.ExportFiles(
            fmt=job.format,
            container=job.container,
            with_metadata=params["with_metadata"],
            files={part: handle for part, (handle, _) in staged.items()},
        )
        rows = 0
        for batch in export_batches(spec, timer=timer, prefetch=True):
            started = time.perf_counter()
            for prompt, prompt_pairs, prompt_split in batch:
                rows += files.add(prompt, prompt_pairs, prompt_split)
                exported_ids.append(prompt.prompt_id)
            started = timer.add("encode", started)
            files.flush()
            timer.add("write", started)
            ExportJob.objects.filter(pk=job.pk).update(rows=rows, prompts=len(exported_ids))
        started = time.perf_counter()
        results = files.close()
        for handle, _ in staged.values():
            handle.close()
        started = timer.add("write", started)
        names = {
            part: _store(storage, _file_name(job, part), path) for part, (_, path) in staged.items()
        }
        timer.add("store", started)
    finally:
        for handle, path in staged.values():
            handle.close()
            if os.path.exists(path):
                os.unlink(path)
    covered = np.concatenate(
        [np.frombuffer(exported_ids, dtype=np.int64), spec.skip_prompt_ids.ids]
    )
    combined = results[formats.ALL]
    job.file.name = names[formats.ALL]
    job.rows, job.sha256, job.size_bytes = combined.rows, combined.sha256, combined.size_bytes
    job.prompts = len(exported_ids)
    job.splits = {
        name: {"rows": files.rows_by_split.get(name, 0)}
        | (
            {
                "file": names[name],
                "sha256": results[name].sha256,
                "size_bytes": results[name].size_bytes,
            }
            if name in results
            else {}
        )
        for name in (formats.TRAIN, formats.TEST)
    }
    job.exported_prompt_ids = pack_prompt_ids(covered)
    job.status, job.finished_at = ExportStatus.DONE, timezone.now()
    timer.seconds["total"] = time.perf_counter() - started_at
    job.timings = timer.rounded()
    job.save(
        update_fields=[
            "file",
            "rows",
            "sha256",
            "size_bytes",
            "prompts",
            "splits",
            "exported_prompt_ids",
            "status",
            "finished_at",
            "timings",
        ]
    )


def _staged_file(storage: Storage) -> tuple[IO[bytes], str]:
    """A temporary file, next to the storage's folder when it has one so storing is a rename."""
    folder = None
    if hasattr(storage, "path"):
        try:
            folder = storage.path("staging")
            os.makedirs(folder, exist_ok=True)
        except NotImplementedError:
            folder = None
    descriptor, path = tempfile.mkstemp(prefix="export-", suffix=".partial", dir=folder)
    return os.fdopen(descriptor, "wb", buffering=1024 * 1024), path


class _StagedFile(File):
    """A finished temporary file; FileSystemStorage moves it into place instead of copying."""

    def __init__(self, path: str) -> None:
        # The File owns the handle; _store closes it.
        super().__init__(open(path, "rb"), name=os.path.basename(path))  # noqa: SIM115
        self._path = path

    def temporary_file_path(self) -> str:
        return self._path


def _store(storage: Storage, name: str, path: str) -> str:
    staged = _StagedFile(path)
    try:
        return storage.save(name, staged)
    finally:
        staged.close()


def export_job_delete_file(*, job: ExportJob, deleted_by) -> ExportJob:
    """Delete a finished export's files; the job record, its numbers and sha256 stay."""
    with transaction.atomic():
        locked = ExportJob.objects.select_for_update().get(pk=job.pk)
        if not locked.file:
            raise Conflict("this export has no file to delete", code="no_file")
        names = [locked.file.name] + [
            split["file"] for split in locked.splits.values() if split.get("file")
        ]
        locked.file.name = ""
        locked.splits = {
            name: {key: value for key, value in split.items() if key != "file"}
            for name, split in locked.splits.items()
        }
        locked.file_deleted_at = timezone.now()
        locked.file_deleted_by = deleted_by
        locked.save(update_fields=["file", "splits", "file_deleted_at", "file_deleted_by"])
        transaction.on_commit(lambda: _delete_stored(names))
    return locked


def _delete_stored(names: list[str]) -> None:
    storage = exports_storage()
    for name in names:
        storage.delete(name)


# --- reading files back -----------------------------------------------------------------


def export_file_name(*, job: ExportJob, split: str | None) -> str:
    """The stored file for the whole export or one split; errors say why there is none."""
    if job.status != ExportStatus.DONE:
        raise Conflict(f"the export is {job.status}, not done", code="not_ready")
    if job.file_deleted_at is not None or not job.file:
        raise Conflict("the export's files were deleted", code="file_deleted")
    if split in (None, "", formats.ALL):
        return job.file.name or ""
    if split not in (formats.TRAIN, formats.TEST):
        raise InvalidInput("split must be train or test", field="split")
    entry = job.splits.get(split, {})
    if entry.get("file"):
        return entry["file"]
    if split == formats.TRAIN and not job.params.get("test_fraction"):
        # Not split: every row is a training row.
        return job.file.name or ""
    raise InvalidInput(
        "this export has no test split (test_fraction was 0)" if split == formats.TEST else "",
        field="split",
    )


def export_preview(*, job: ExportJob, limit: int = PREVIEW_ROWS) -> list[formats.Row]:
    """The first rows of the export's file."""
    name = export_file_name(job=job, split=None)
    with exports_storage().open(name, "rb") as handle:
        return formats.read_first_rows(handle, job.container, limit)


# --- streaming straight to the client ---------------------------------------------------


class _Drain:
    """A binary sink whose bytes are taken out after each batch."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks = []
        return data


def export_stream_open(
    *,
    project: Project,
    format: str = ExportFormat.TRL,
    strategy: str = PairStrategy.ALL_PAIRS,
    container: str = Container.JSONL,
    params: dict[str, Any] | None = None,
    split: str | None = None,
    limit: int | None = None,
) -> Iterator[bytes]:
    """Check the request now and return the generator of the export's bytes.

    Without a limit the export must fit under `STREAM_MAX_ROWS` (by its estimate), and its
    bytes are exactly those of a job with the same parameters over the same data; with a
    limit the first `limit` rows are sent (a sample or preview).
    """
    cleaned = export_params_clean(
        params or {}, project=project, format=format, strategy=strategy, container=container
    )
    if container == Container.PARQUET:
        raise InvalidInput(
            "Parquet needs the whole file before it can be read; create an export job",
            field="container",
        )
    if split not in (None, "", formats.TRAIN, formats.TEST):
        raise InvalidInput("split must be train or test", field="split")
    if limit is not None and not 1 <= limit <= STREAM_MAX_ROWS:
        raise InvalidInput(f"limit must be between 1 and {STREAM_MAX_ROWS}", field="limit")
    spec = ExportSpec(
        project=project,
        format=format,
        strategy=strategy,
        container=container,
        params=cleaned,
        skip_prompt_ids=_earlier_prompt_ids(cleaned["since_export"]),
    )
    if limit is None:
        estimate = rows_estimate(spec)
        if estimate > STREAM_MAX_ROWS:
            raise TooLarge(
                f"about {estimate} rows is more than the {STREAM_MAX_ROWS} a stream sends; "
                "create an export job or pass a limit",
                field="limit",
            )
    return _stream(spec, split=split or None, limit=limit or STREAM_MAX_ROWS)


def _stream(spec: ExportSpec, *, split: str | None, limit: int) -> Iterator[bytes]:
    sink = _Drain()
    files = formats.ExportFiles(
        fmt=spec.format,
        container=spec.container,
        with_metadata=spec.params["with_metadata"],
        files={formats.ALL: sink},  # type: ignore[dict-item]
        background=False,
    )
    rows_per_pair = 2 if spec.format == ExportFormat.TRL_UNPAIRED else 1
    rows = 0
    for batch in export_batches(spec):
        for prompt, prompt_pairs, prompt_split in batch:
            if split and prompt_split != split:
                continue
            room = (limit - rows) // rows_per_pair
            if room <= 0:
                break
            rows += files.add(prompt, prompt_pairs[:room], prompt_split)
        files.flush()
        data = sink.take()
        if data:
            yield data
        if (limit - rows) // rows_per_pair <= 0:
            break
    files.close()
    data = sink.take()
    if data:
        yield data
