"""Generation jobs: plan one call per (prompt, endpoint, sample), fan the calls out in
chunks of prompts to the workers, store each prompt's responses at once, finish the job.

The job is a `core.jobs` job; its calls are `Generation` rows, unique per (prompt,
endpoint, sample), so planning again (a retaken job, a second job over the same prompts)
never calls twice for a response that exists. A call that fails after the client's retries
is recorded on its row with the reason; it never fails the job.

Concurrency: each chunk runs its calls on a thread pool, every call holding one of its
endpoint's slots (`llm.concurrency`, a Redis semaphore shared by all workers), so chunks on
several workers together stay within each endpoint's limit.

Over 400 lines: planning, fan-out and finishing are one job's life and share its
bookkeeping; the calls and their storage live in `llm.client` and `generation_store`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.utils import timezone

from core.errors import InvalidInput
from core.jobs import (
    JobStatus,
    describe_error,
    job_beating,
    job_claim_or_check_back,
    job_enqueue,
    job_fail,
    job_finish,
    job_heartbeat,
)
from labeling.models import MAX_RESPONSES, MIN_RESPONSES, Assignment, Project, Prompt
from llm.client import CallFailed, Completion, EndpointConfig, chat
from llm.concurrency import endpoint_slot
from llm.models import CallStatus, Generation, GenerationJob, ModelEndpoint
from llm.services.endpoints import endpoint_config
from llm.services.generation_store import store_prompts

logger = logging.getLogger(__name__)

GENERATION_TASK = "llm.tasks.generation_run"
CHUNK_TASK = "llm.tasks.generation_chunk"
SELECTIONS = ("missing", "all")
MAX_SAMPLES = MAX_RESPONSES
MAX_POOL_THREADS = 64
PLAN_BATCH = 1000
STORE_EVERY_SECONDS = 0.5
STORE_BATCH_PROMPTS = 64
CHUNK_ROUNDS = 8
MIN_CHUNK_PROMPTS = 32
SKIP_SERVED = "already served to raters (its responses stay as they were shown)"
SKIP_FULL = f"would have more than {MAX_RESPONSES} responses"


# Create ---------------------------------------------------------------------------------------


def generation_create(
    *, project: Project, by: Any, endpoint_ids: Sequence[int], samples: int, prompts: Any
) -> GenerationJob:
    """A queued generation job over checked inputs, sent to a worker on commit."""
    endpoint_ids = _checked_endpoints(project=project, endpoint_ids=endpoint_ids)
    if not isinstance(samples, int) or isinstance(samples, bool) or not 1 <= samples <= MAX_SAMPLES:
        raise InvalidInput(
            f"samples must be a whole number from 1 to {MAX_SAMPLES}", field="samples"
        )
    selection = _checked_selection(project=project, prompts=prompts)
    with transaction.atomic():
        job = GenerationJob.objects.create(
            project=project,
            created_by=by,
            endpoint_ids=endpoint_ids,
            samples=samples,
            prompt_selection=selection,
        )
        job_enqueue(GenerationJob, job_id=job.pk, task_name=GENERATION_TASK)
    return job


def _checked_endpoints(*, project: Project, endpoint_ids: Sequence[int]) -> list[int]:
    if not isinstance(endpoint_ids, list | tuple) or not endpoint_ids:
        raise InvalidInput("give at least one endpoint id", field="endpoints")
    if not all(isinstance(item, int) and not isinstance(item, bool) for item in endpoint_ids):
        raise InvalidInput("endpoint ids must be whole numbers", field="endpoints")
    wanted = sorted(set(endpoint_ids))
    found = set(
        ModelEndpoint.objects.filter(project=project, pk__in=wanted).values_list("pk", flat=True)
    )
    missing = [item for item in wanted if item not in found]
    if missing:
        raise InvalidInput(f"no endpoint {missing[0]} in this project", field="endpoints")
    return wanted


def _checked_selection(*, project: Project, prompts: Any) -> str | list[int]:
    if isinstance(prompts, str):
        if prompts not in SELECTIONS:
            raise InvalidInput('prompts must be "missing", "all" or a list of ids', field="prompts")
        return prompts
    if not isinstance(prompts, list) or not prompts:
        raise InvalidInput('prompts must be "missing", "all" or a list of ids', field="prompts")
    if not all(isinstance(item, int) and not isinstance(item, bool) for item in prompts):
        raise InvalidInput("prompt ids must be whole numbers", field="prompts")
    wanted = sorted(set(prompts))
    found = set(Prompt.objects.filter(project=project, pk__in=wanted).values_list("pk", flat=True))
    missing = [item for item in wanted if item not in found]
    if missing:
        raise InvalidInput(f"no prompt {missing[0]} in this project", field="prompts")
    return wanted


# Run: plan and fan out ------------------------------------------------------------------------


def generation_run(*, job_id: int) -> dict[str, Any]:
    """Claim the job, plan its calls (again, when retaken: planning is idempotent), and send
    its chunks; the last chunk to finish finishes the job."""
    if not job_claim_or_check_back(GenerationJob, job_id=job_id, task_name=GENERATION_TASK):
        return {"job_id": job_id, "skipped": True}
    job = GenerationJob.objects.select_related("project").get(pk=job_id)
    try:
        planned, skipped = _plan(job)
    except Exception as error:
        logger.exception("generation %s could not be planned", job_id)
        job_fail(GenerationJob, job_id=job_id, reason=describe_error(error), attempt=job.attempts)
        return {"job_id": job_id, "status": JobStatus.FAILED}
    job_heartbeat(GenerationJob, job_id=job_id, planned=planned, skipped=skipped)
    chunks = _chunks(job_id)
    for prompt_ids in chunks:
        current_app.tasks[CHUNK_TASK].delay(job_id, prompt_ids)
    generation_finish_if_complete(job_id=job_id)
    return {"job_id": job_id, "planned": planned, "chunks": len(chunks)}


def _selected_prompts(job: GenerationJob) -> Any:
    prompts = Prompt.objects.filter(project_id=job.project_id, archived_at__isnull=True)
    selection = job.prompt_selection
    if selection == "missing":
        prompts = prompts.filter(n_responses__lt=MIN_RESPONSES)
    elif isinstance(selection, list):
        prompts = prompts.filter(pk__in=selection)
    served = Assignment.objects.filter(prompt_id=OuterRef("pk"))
    return prompts.annotate(served=Exists(served)).order_by("pk")


def _plan(job: GenerationJob) -> tuple[int, dict[str, int]]:
    """Give the job a pending row for every wanted call that has no response yet; answer how
    many calls the job has and the prompts left out, by reason."""
    endpoint_ids = list(
        ModelEndpoint.objects.filter(project_id=job.project_id, pk__in=job.endpoint_ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    wanted = [
        (endpoint_id, sample) for endpoint_id in endpoint_ids for sample in range(job.samples)
    ]
    skipped: Counter[str] = Counter()
    rows = _selected_prompts(job).values_list("pk", "n_responses", "served")
    batch: list[tuple[int, int, bool]] = []
    for row in rows.iterator(chunk_size=PLAN_BATCH):
        batch.append(row)
        if len(batch) >= PLAN_BATCH:
            _plan_batch(job, batch, wanted, skipped)
            batch = []
    if batch:
        _plan_batch(job, batch, wanted, skipped)
    return Generation.objects.filter(job=job).count(), dict(skipped)


def _plan_batch(
    job: GenerationJob,
    batch: list[tuple[int, int, bool]],
    wanted: list[tuple[int, int]],
    skipped: Counter[str],
) -> None:
    prompt_ids = [prompt_id for prompt_id, _, _ in batch]
    existing: dict[tuple[int, int, int], Generation] = {
        (row.prompt_id, row.endpoint_id, row.sample): row
        for row in Generation.objects.filter(
            prompt_id__in=prompt_ids, endpoint_id__in={e for e, _ in wanted}
        ).select_related("job")
    }
    new_rows: list[Generation] = []
    take_over: list[int] = []
    for prompt_id, n_responses, served in batch:
        calls = [
            (endpoint_id, sample)
            for endpoint_id, sample in wanted
            if _still_wanted(existing.get((prompt_id, endpoint_id, sample)), job)
        ]
        if not calls:
            continue
        if served:
            skipped[SKIP_SERVED] += 1
            continue
        if n_responses + len(calls) > MAX_RESPONSES:
            skipped[SKIP_FULL] += 1
            continue
        for endpoint_id, sample in calls:
            row = existing.get((prompt_id, endpoint_id, sample))
            if row is None:
                new_rows.append(
                    Generation(job=job, prompt_id=prompt_id, endpoint_id=endpoint_id, sample=sample)
                )
            elif row.job_id != job.pk:
                take_over.append(row.pk)
    Generation.objects.bulk_create(new_rows, ignore_conflicts=True)
    if take_over:
        Generation.objects.filter(pk__in=take_over).filter(_free_to_take()).update(
            job=job, status=CallStatus.PENDING, error="", updated_at=timezone.now()
        )


def _still_wanted(row: Generation | None, job: GenerationJob) -> bool:
    """A call is planned unless its response exists or another live job has it pending."""
    if row is None or row.job_id == job.pk:
        return row is None or row.status != CallStatus.DONE
    if row.status == CallStatus.DONE:
        return False
    return row.status == CallStatus.FAILED or row.job is None or not row.job.is_live


def _free_to_take() -> Q:
    return (
        Q(status=CallStatus.FAILED)
        | Q(job__isnull=True)
        | Q(job__status__in=[JobStatus.DONE, JobStatus.FAILED])
    )


def _chunks(job_id: int) -> list[list[int]]:
    """The job's pending prompts, in chunks of `chunk_prompts`."""
    prompt_ids = sorted(
        set(
            Generation.objects.filter(job_id=job_id, status=CallStatus.PENDING).values_list(
                "prompt_id", flat=True
            )
        )
    )
    job = GenerationJob.objects.get(pk=job_id)
    size = chunk_prompts(job)
    return [prompt_ids[start : start + size] for start in range(0, len(prompt_ids), size)]


def chunk_prompts(job: GenerationJob) -> int:
    """Prompts per chunk: `LLM_CHUNK_PROMPTS` when set, else enough that a chunk makes
    `CHUNK_ROUNDS` rounds of calls at its endpoints' combined concurrency (at least
    `MIN_CHUNK_PROMPTS`). A chunk ends with a barrier — its slowest call holds the worker
    until it is back — so a chunk of one or two rounds leaves slots idle at every boundary
    (at concurrency 16, chunks of 32 prompts ran at 52 calls/s, of 128 at 78: bench/)."""
    configured = int(settings.LLM_CHUNK_PROMPTS)
    if configured > 0:
        return configured
    endpoints = ModelEndpoint.objects.filter(pk__in=job.endpoint_ids)
    concurrency = sum(endpoints.values_list("concurrency", flat=True)) or 1
    calls_per_prompt = max(1, len(job.endpoint_ids) * job.samples)
    return max(MIN_CHUNK_PROMPTS, -(-CHUNK_ROUNDS * concurrency // calls_per_prompt))


# Run: one chunk -------------------------------------------------------------------------------


def generation_chunk_run(*, job_id: int, prompt_ids: Iterable[int]) -> dict[str, int]:
    """Make the pending calls of these prompts, store each prompt's responses as soon as all
    its calls are back, then finish the job if nothing is left."""
    job = GenerationJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).first()
    if job is None:
        return {"calls": 0}
    calls = list(
        Generation.objects.filter(
            job_id=job_id, status=CallStatus.PENDING, prompt_id__in=list(prompt_ids)
        ).select_related("endpoint")
    )
    if not calls:
        generation_finish_if_complete(job_id=job_id)
        return {"calls": 0}
    try:
        with job_beating(GenerationJob, job_id=job_id, attempt=job.attempts):
            done = _run_calls(job, calls)
    except Exception as error:
        logger.exception("generation %s: a chunk failed", job_id)
        Generation.objects.filter(pk__in=[c.pk for c in calls], status=CallStatus.PENDING).update(
            status=CallStatus.FAILED, error=describe_error(error)[:500], updated_at=timezone.now()
        )
        done = len(calls)
    generation_finish_if_complete(job_id=job_id)
    return {"calls": done}


def _run_calls(job: GenerationJob, calls: list[Generation]) -> int:
    messages = dict(
        Prompt.objects.filter(pk__in={c.prompt_id for c in calls}).values_list("pk", "messages")
    )
    endpoints = {c.endpoint_id: c.endpoint for c in calls}
    configs = {pk: endpoint_config(endpoint) for pk, endpoint in endpoints.items()}
    waiting: dict[int, int] = Counter(c.prompt_id for c in calls)
    results: dict[int, list[tuple[Generation, Completion | CallFailed]]] = defaultdict(list)
    per_endpoint = Counter(c.endpoint_id for c in calls)
    threads = min(
        MAX_POOL_THREADS,
        sum(min(endpoints[pk].concurrency, count) for pk, count in per_endpoint.items()),
    )
    finished = 0
    complete: list[int] = []  # prompts whose calls are all back, not stored yet
    last_store = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"gen-{job.pk}") as pool:
        futures: dict[Future[Completion | CallFailed], Generation] = {
            pool.submit(
                _call, configs[c.endpoint_id], endpoints[c.endpoint_id], messages[c.prompt_id]
            ): c
            for c in calls
        }
        pending = set(futures)
        while pending:
            ready, pending = wait(pending, timeout=STORE_EVERY_SECONDS, return_when=FIRST_COMPLETED)
            for future in ready:
                call = futures[future]
                results[call.prompt_id].append((call, future.result()))
                waiting[call.prompt_id] -= 1
                if waiting[call.prompt_id] == 0:
                    complete.append(call.prompt_id)
            # Stored in batches (one transaction, one heartbeat): a commit per call would
            # cost more than the call itself against a fast local server.
            due = time.monotonic() - last_store >= STORE_EVERY_SECONDS
            if complete and (due or not pending or len(complete) >= STORE_BATCH_PROMPTS):
                finished += store_prompts(job, {pk: results.pop(pk) for pk in complete})
                complete, last_store = [], time.monotonic()
                if not job_heartbeat(GenerationJob, job_id=job.pk):
                    for future in pending:
                        future.cancel()
                    logger.warning("generation %s is no longer running; chunk stopped", job.pk)
                    break
    return finished


def _call(
    config: EndpointConfig, endpoint: ModelEndpoint, messages: list[dict[str, str]]
) -> Completion | CallFailed:
    hold = (config.timeout_seconds + 5) * (config.max_retries + 1) + 60
    try:
        with endpoint_slot(endpoint_id=endpoint.pk, limit=endpoint.concurrency, hold_seconds=hold):
            return chat(config, messages)
    except CallFailed as failure:
        return failure
    except Exception as error:  # a bug or an unexpected client error: recorded, not raised
        return CallFailed(describe_error(error)[:500])


# Finish and report ----------------------------------------------------------------------------


def generation_finish_if_complete(*, job_id: int) -> bool:
    """Finish the job (with its token totals) once none of its calls is pending."""
    if Generation.objects.filter(job_id=job_id, status=CallStatus.PENDING).exists():
        return False
    totals = _token_totals(job_id)
    return job_finish(GenerationJob, job_id=job_id, **totals)


def _token_totals(job_id: int) -> dict[str, int]:
    sums = Generation.objects.filter(job_id=job_id).aggregate(
        tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out")
    )
    return {"tokens_in": sums["tokens_in"] or 0, "tokens_out": sums["tokens_out"] or 0}


def generation_report(*, job: GenerationJob, failures_limit: int = 100) -> dict[str, Any]:
    """Status, progress (calls done / planned), failures with reasons, tokens, wall time."""
    counts = Counter(
        dict(
            Generation.objects.filter(job=job)
            .values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
    )
    totals = (
        {"tokens_in": job.tokens_in, "tokens_out": job.tokens_out}
        if not job.is_live
        else _token_totals(job.pk)
    )
    failures = [
        {
            "prompt_id": row["prompt_id"],
            "external_id": row["prompt__external_id"],
            "endpoint_id": row["endpoint_id"],
            "endpoint": row["endpoint__name"],
            "sample": row["sample"],
            "reason": row["error"],
        }
        for row in Generation.objects.filter(job=job, status=CallStatus.FAILED)
        .order_by("id")
        .values(
            "prompt_id", "prompt__external_id", "endpoint_id", "endpoint__name", "sample", "error"
        )[:failures_limit]
    ]
    end = job.finished_at or timezone.now()
    return {
        "id": job.pk,
        "status": job.status,
        "error": job.error,
        "endpoints": job.endpoint_ids,
        "samples": job.samples,
        "prompts": job.prompt_selection,
        "progress": {
            "planned": job.planned,
            "done": counts[CallStatus.DONE] + counts[CallStatus.FAILED],
            "succeeded": counts[CallStatus.DONE],
            "failed": counts[CallStatus.FAILED],
        },
        "skipped": job.skipped,
        "failures": failures,
        **totals,
        "wall_seconds": round((end - job.started_at).total_seconds(), 3)
        if job.started_at
        else None,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }
