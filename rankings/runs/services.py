"""Writes for agreement runs: requesting, computing and scheduling them.

A run is a job of the one lifecycle (``core.jobs``): queued on commit by task name, claimed
by a conditional UPDATE, beating between its phases, finished or failed conditionally, and
swept when lost. Once a run is stored, ``agreement_run_finished`` tells whoever acts on its
findings (the quality app connects to it), so this package never imports them.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connection, transaction
from django.dispatch import Signal

from core import db, jobs
from core.jobs import JobStatus
from labeling.models import Project
from rankings.models import AgreementRun, Ranking, RaterScore
from rankings.runs import maths, selectors, storage
from rankings.runs.data import agreement_data

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
        with jobs.job_beating(AgreementRun, job_id=run_id, attempt=attempt):
            stored = _compute_and_store(run, attempt=attempt)
    except Exception as error:
        logger.exception("agreement run %s failed", run_id)
        reason = jobs.describe_error(error)
        jobs.job_fail(AgreementRun, job_id=run_id, reason=reason, attempt=attempt)
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
    """The run's numbers, stored in one transaction with the run finished; None when the
    run stopped being this worker's (given up, or retaken) on the way."""
    run_id = run.pk
    last_id = selectors.latest_ranking_id(project=run.project)
    data = agreement_data(project=run.project, up_to_id=last_id)
    if not jobs.job_heartbeat(AgreementRun, job_id=run_id, attempt=attempt):
        return None
    part = maths.prompt_maths(data)
    if not jobs.job_heartbeat(AgreementRun, job_id=run_id, attempt=attempt):
        return None
    # The raters' statistics do not depend on the consensus: a thread computes them while
    # this one fits the consensus and formats the prompt rows (numpy releases the GIL in
    # most of both).
    with ThreadPoolExecutor(max_workers=1) as pool, transaction.atomic():
        rater_part = pool.submit(maths.rater_maths, data, part)
        if db.is_postgresql():
            with connection.cursor() as cursor:
                # A run is derived data: should the server crash right after this commit,
                # the run is recomputed, so the commit need not wait for its WAL flush.
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        with storage.prompt_agreements_writing(run_id=run_id, data=data, part=part) as result:
            # Joined while the database stores the last prompt rows (the prompt rows have
            # no foreign key constraints to check: see PromptAgreement).
            run_maths = maths.finish_maths(data, part, result, rater_part.result())
        summary = run_maths.summary
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
        if not finished:
            transaction.set_rollback(True)  # not its prompt rows either
            return None
        RaterScore.objects.bulk_create(
            storage.rater_score_rows(run_id=run_id, data=data, maths=run_maths),
            batch_size=storage.BATCH_SIZE,
        )
    return summary, len(data.prompt_ids)


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
