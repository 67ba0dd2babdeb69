"""Writes for agreement runs: requesting, computing and scheduling them.

A run is a job of the one lifecycle (``core.jobs``): queued on commit by task name, claimed
by a conditional UPDATE, beating between its phases, finished or failed conditionally, and
swept when lost. Once a run is stored, ``agreement_run_finished`` tells whoever acts on its
findings (the quality app connects to it), so this package never imports them.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.dispatch import Signal

from core import db, jobs, memory
from core.jobs import JobStatus
from labeling.models import Project
from rankings.models import AgreementRun, Ranking, RaterScore
from rankings.runs import extensions, parts, selectors, storage

logger = logging.getLogger(__name__)

COMPUTE_TASK = "rankings.tasks.agreement_run_compute"
"""The registered name of the compute task (``rankings.runs.tasks``)."""

agreement_run_finished = Signal()
"""Sent with ``run`` once a run is stored; a receiver's answer is the run's ``findings``.
A receiver that raises is logged and leaves the run done."""


def agreement_run_request(*, project: Project, trigger: str) -> AgreementRun:
    """Queue an agreement run; the worker starts it once this transaction commits.

    A run still waiting in the queue is returned instead of a second one: it has not read
    the rankings yet, so it will see everything the new one would. If it has waited longer
    than ``JOB_QUEUED_SECONDS`` its message was lost, and is sent again now; one the sweep
    gave up is not waited for.
    """
    with transaction.atomic():
        # Serialize requests per project so two clicks cannot both miss the queued run.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        waiting = selectors.agreement_run_waiting(project=project)
        if waiting is not None:
            jobs.job_send_again_if_lost(AgreementRun, job_id=waiting.pk, task_name=COMPUTE_TASK)
            return waiting
        run = AgreementRun.objects.create(project=project, trigger=trigger)
        jobs.job_enqueue(AgreementRun, job_id=run.pk, task_name=COMPUTE_TASK)
    return run


def agreement_run_compute(*, run_id: int) -> dict[str, Any]:
    """Compute a claimed run and store it: project metrics, a score row per rater and an
    agreement row (with consensus) per prompt; then announce it. Returns a summary.

    A run this worker cannot claim (done, failed, running elsewhere) is skipped, and so is
    one given up while it computed (its heartbeat says so). Any error fails the run with
    the error and is logged, not raised: the run row is where leads and clients look, and
    an eager run must not break the request that queued it.
    """
    if not jobs.job_claim_or_check_back(AgreementRun, job_id=run_id, task_name=COMPUTE_TASK):
        return _skipped(run_id)
    run = AgreementRun.objects.select_related("project").get(pk=run_id)
    attempt = run.attempts
    try:
        with (
            jobs.job_beating(AgreementRun, job_id=run_id, attempt=attempt),
            memory.large_buffers_kept(),
        ):
            stored = _compute_and_store(run, attempt=attempt)
    except Exception as error:
        logger.exception("agreement run %s failed", run_id)
        reason = jobs.describe_error(error)
        if jobs.job_fail(AgreementRun, job_id=run_id, reason=reason, attempt=attempt):
            parts.clear_parts(run_id=run_id)
        return {"run_id": run_id, "status": JobStatus.FAILED, "error": reason}
    if stored is None:
        return _skipped(run_id)
    summary, n_prompt_rows = stored
    findings = _announce_finished(run_id=run_id)
    pruned = storage.prompt_agreements_prune(project_id=run.project_id)
    return {
        "run_id": run_id,
        "status": JobStatus.DONE,
        "n_rankings": summary["n_rankings"],
        "n_prompt_rows": n_prompt_rows,
        "findings": findings,
        "pruned_prompt_rows": pruned,
    }


def _compute_and_store(run: AgreementRun, *, attempt: int) -> tuple[dict[str, Any], int] | None:
    """The run's numbers, computed part by part (``parts``: by this worker and any other
    that takes a part) and stored with the run finished; None when the run stopped being
    this worker's (given up, or retaken) on the way."""
    run_id = run.pk
    # Read from the read replica when there is one (what it has replayed is what the run
    # sees and records); the run's rows are written to the primary.
    with db.replica_reads():
        last_id = selectors.latest_ranking_id(project=run.project)
    with tempfile.TemporaryDirectory(prefix="ranklab-run-") as folder:
        computing = parts.RunParts(run, attempt=attempt, up_to_id=last_id, folder=Path(folder))
        outcome = computing.compute()
    if outcome is None:
        return None
    summary = outcome.result.summary
    extra = extensions.extension_metrics(run.project)
    if extra:
        summary = {**summary, "extensions": extra}
    with transaction.atomic():
        if db.is_postgresql():
            with connection.cursor() as cursor:
                # A run is derived data: should the server crash right after this commit,
                # the run is recomputed, so the commit need not wait for its WAL flush.
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        # Conditional, like the claim: a run given up as abandoned (or retaken) stays so.
        finished = jobs.job_finish(
            AgreementRun,
            job_id=run_id,
            attempt=attempt,
            last_ranking_id=last_id,
            metrics=summary,
            n_prompts=int(summary["n_prompts"] or 0),
            n_rankings=int(summary["n_rankings"] or 0),
        )
        if finished:
            parts.forget_parts(run_id=run_id)
            RaterScore.objects.bulk_create(
                storage.rater_score_rows_of(
                    run_id=run_id,
                    rater_user_ids=computing.scope.rater_user_ids.tolist(),
                    results=outcome.result.raters,
                ),
                batch_size=storage.BATCH_SIZE,
            )
    if not finished:
        return None  # the attempt that retook the run clears its parts and rows
    return summary, outcome.n_prompt_rows


def agreement_run_part_compute(*, part_id: int) -> dict[str, Any]:
    """Compute one part of a run whose worker sent it out (``parts``)."""
    return parts.part_compute(part_id=part_id)


def _skipped(run_id: int) -> dict[str, Any]:
    status = AgreementRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
    return {"run_id": run_id, "status": status or "missing", "skipped": True}


def _announce_finished(*, run_id: int) -> dict[str, int] | None:
    """Flags and adaptive overlap from a stored run; a failure here never fails the run."""
    run = AgreementRun.objects.get(pk=run_id)
    findings = None
    for receiver, answer in agreement_run_finished.send_robust(sender=AgreementRun, run=run):
        if isinstance(answer, Exception):
            logger.error(
                "agreement run %s: %s failed", run_id, receiver, exc_info=answer
            )  # fmt: skip
        elif answer is not None:
            findings = answer
    return findings


def agreement_runs_queue_due() -> dict[str, int]:
    """Beat entry: fail lost runs, then queue a run for every project with rankings newer
    than its last run and no live run."""
    abandoned = jobs.jobs_sweep_kind(AgreementRun).failed
    queued = 0
    for project in list(selectors.projects_with_unseen_rankings()):  # no cursor held open
        agreement_run_request(project=project, trigger="schedule")
        queued += 1
    return {"queued": queued, "abandoned": abandoned}


def agreement_run_request_if_due(*, project: Project) -> AgreementRun | None:
    """Queue a run once `agreement_every_n_rankings` rankings arrived since the last finished one.

    Called after each submit commits, so it is cheap and debounced: nothing happens while a
    run is queued or running (it will see the new rankings), and the count stops at N using
    the (project, id) index. Never raises: a failed check must not fail the submit that
    triggered it; the beat schedule catches up on anything missed.
    """
    every = project.agreement_every_n_rankings
    if not every:
        return None
    try:
        if selectors.agreement_run_pending(project=project):
            return None
        last_seen = selectors.last_seen_ranking_id(project=project)
        new_rankings = (
            Ranking.objects.filter(project=project, id__gt=last_seen)
            .order_by("id")
            .values("id")[:every]
            .count()
        )
        if new_rankings < every:
            return None
        return agreement_run_request(project=project, trigger="rankings")
    except Exception:
        logger.exception("could not check whether project %s is due a run", project.pk)
        return None
