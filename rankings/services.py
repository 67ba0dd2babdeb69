"""Writes for rankings: submitting a ranking and queueing agreement runs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from itertools import chain, islice
from typing import Any, cast

import numpy as np
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone
from psycopg.copy import QueuedLibpqWriter

from core import db
from core.errors import Conflict, InvalidInput
from labeling import services as labeling_services
from labeling.models import Assignment, AssignmentStatus, Project
from rankings import consensus, metrics, quality, selectors
from rankings.models import AgreementRun, PromptAgreement, Ranking, RaterScore, RunStatus
from rankings.validation import (
    RankingProblem,
    clean_ranking_groups,
    clean_ratings,
    clean_rationale,
    clean_seconds,
    clean_strength,
)

logger = logging.getLogger(__name__)


def ranking_submit(
    *,
    assignment_id: int,
    rater: User,
    ranking: Any,
    ratings: Any = None,
    rationale: str = "",
    seconds: Any = None,
    strength: Any = None,
) -> tuple[Ranking, bool]:
    """Store the ranking for a leased assignment; returns (ranking, created).

    Submitting the same ranking again returns the stored one (a retried request never
    counts twice); a different ranking for a finished assignment is a conflict.
    """
    with transaction.atomic():
        assignment = labeling_services.assignment_lock_for_finish(
            assignment_id=assignment_id, rater=rater
        )
        project = assignment.project
        shown_ids = [int(response_id) for response_id in assignment.shown_order]
        try:
            groups = clean_ranking_groups(
                ranking, shown_ids=shown_ids, allow_ties=project.allow_ties
            )
            cleaned_ratings = clean_ratings(ratings, shown_ids=shown_ids, rubric=project.rubric)
            cleaned_seconds = clean_seconds(seconds)
            cleaned_strength = clean_strength(strength, groups=groups)
            rationale = clean_rationale(rationale, required=project.require_rationale)
        except RankingProblem as problem:
            raise InvalidInput(f"{problem.field}: {problem.message}", field=problem.field) from None
        if assignment.status == AssignmentStatus.SUBMITTED:
            existing = Ranking.objects.get(assignment=assignment)
            if existing.groups == groups:
                return existing, False
            raise Conflict("this task was already submitted with another ranking", code="submitted")
        labeling_services.assignment_claim_slot(assignment=assignment)
        # A task reopened by an undo already has its ranking: replace it (see ranking_undo).
        stored = _ranking_store(
            assignment=assignment,
            rater=rater,
            groups=groups,
            ratings=cleaned_ratings,
            rationale=rationale,
            seconds=cleaned_seconds,
            strength=cleaned_strength,
        )
        labeling_services.assignment_mark_submitted(assignment=assignment)
        transaction.on_commit(partial(agreement_run_request_if_due, project=project))
    return stored, True


# Agreement runs ---------------------------------------------------------------------------


def agreement_run_abandon_cutoff() -> datetime:
    """Runs queued or started before this never finished: their message or worker was lost.

    Twice the hard task time limit, so a run waiting behind a long export is not abandoned.
    """
    return timezone.now() - timedelta(seconds=2 * settings.CELERY_TASK_TIME_LIMIT)


def agreement_run_request(*, project: Project, trigger: str) -> AgreementRun:
    """Queue an agreement run; the worker starts it once this transaction commits.

    A run still waiting in the queue is returned instead of a second one: it has not read
    the rankings yet, so it will see everything the new one would.
    """
    with transaction.atomic():
        # Serialize requests per project so two clicks cannot both miss the queued run.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        waiting = (
            AgreementRun.objects.filter(
                project=project,
                status=RunStatus.QUEUED,
                created_at__gte=agreement_run_abandon_cutoff(),
            )
            .order_by("-id")
            .first()
        )
        if waiting is not None:
            return waiting
        run = AgreementRun.objects.create(project=project, trigger=trigger)
        transaction.on_commit(partial(_agreement_run_enqueue, run_id=run.pk))
    return run


def _agreement_run_enqueue(*, run_id: int) -> None:
    """Send the compute task; if the broker refuses, fail the run rather than leave it queued."""
    from rankings import tasks  # tasks imports this module

    try:
        tasks.agreement_run_compute_task.delay(run_id)
    except Exception as error:
        logger.exception("could not queue agreement run %s", run_id)
        AgreementRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.FAILED,
            error=f"could not queue the run: {_describe(error)}",
            finished_at=timezone.now(),
        )


def agreement_run_claim(*, run_id: int) -> bool:
    """Move a queued run to running; only one worker wins, so redelivered messages are harmless."""
    claimed = AgreementRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=timezone.now()
    )
    return claimed == 1


def agreement_run_compute(*, run_id: int) -> dict[str, Any]:
    """Compute a claimed run and store it: project metrics, a score row per rater and an
    agreement row (with consensus) per prompt; then apply its findings. Returns a summary.

    A run that is not queued any more (done, failed, taken by another worker) is skipped.
    Any error marks the run failed with the error and is logged, not raised: the run row
    is where leads and clients look, and an eager run must not break the request that
    queued it. Flags and adaptive overlap (``quality.apply_run_findings``) run once the run
    is stored; their failure is logged and leaves the run done.
    """
    if not agreement_run_claim(run_id=run_id):
        status = AgreementRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
        return {"run_id": run_id, "status": status or "missing", "skipped": True}
    try:
        run = AgreementRun.objects.select_related("project").get(pk=run_id)
        last_id = selectors.latest_ranking_id(project=run.project)
        data = selectors.agreement_data(project=run.project, up_to_id=last_id)
        part = prompt_maths(data)
        # The raters' statistics do not depend on the consensus: a thread computes them
        # while this one fits the consensus and formats the prompt rows (numpy releases
        # the GIL in most of both).
        with ThreadPoolExecutor(max_workers=1) as pool, transaction.atomic():
            rater_part = pool.submit(rater_maths, data, part)
            if db.is_postgresql():
                with connection.cursor() as cursor:
                    # A run is derived data: should the server crash right after this
                    # commit, the run is recomputed, so the commit need not wait for its
                    # WAL flush.
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            with _prompt_agreements_writing(run_id=run_id, data=data, part=part) as result:
                # Joined while the database stores the last prompt rows (the prompt rows
                # have no foreign key constraints to check: see PromptAgreement).
                maths = finish_maths(data, part, result, rater_part.result())
            summary = maths.summary
            # Conditional, like the claim: a run given up as abandoned stays failed.
            finished = AgreementRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
                status=RunStatus.DONE,
                finished_at=timezone.now(),
                last_ranking_id=last_id,
                metrics=summary,
                n_prompts=int(summary["n_prompts"] or 0),
                n_rankings=int(summary["n_rankings"] or 0),
                error="",
            )
            if not finished:
                transaction.set_rollback(True)  # not its prompt rows either
                return {"run_id": run_id, "status": RunStatus.FAILED, "skipped": True}
            RaterScore.objects.bulk_create(
                _rater_scores(run_id=run_id, data=data, maths=maths), batch_size=BATCH_SIZE
            )
    except Exception as error:
        logger.exception("agreement run %s failed", run_id)
        AgreementRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
            status=RunStatus.FAILED, error=_describe(error), finished_at=timezone.now()
        )
        return {"run_id": run_id, "status": RunStatus.FAILED, "error": _describe(error)}
    findings = _agreement_run_findings(run_id=run_id)
    pruned = prompt_agreements_prune(project_id=run.project_id)
    return {
        "run_id": run_id,
        "status": RunStatus.DONE,
        "n_rankings": summary["n_rankings"],
        "n_prompt_rows": len(data.prompt_ids),
        "findings": findings,
        "pruned_prompt_rows": pruned,
    }


PROMPT_ROW_RUNS_KEPT = 2


def prompt_agreements_prune(*, project_id: int, keep: int = PROMPT_ROW_RUNS_KEPT) -> int:
    """Drop per-prompt rows of all but the newest finished runs.

    A run stores a row per prompt (hundreds of thousands on a large project); the pages
    read only the newest run's rows, while project metrics and rater scores keep the
    history.
    """
    kept = list(
        AgreementRun.objects.filter(project_id=project_id, status=RunStatus.DONE)
        .order_by("-id")
        .values_list("id", flat=True)[:keep]
    )
    if len(kept) < keep:
        return 0
    deleted, _ = PromptAgreement.objects.filter(
        run__project_id=project_id, run_id__lt=min(kept)
    ).delete()
    return deleted


# Rows per INSERT when bulk_create stores score and prompt rows (COPY on PostgreSQL).
BATCH_SIZE = 2000


@dataclass(frozen=True)
class PromptMaths:
    """What consensus and the prompt rows need (see ``prompt_maths``)."""

    table: metrics.RankingTable  # counted rankings, one per rater and prompt
    agreement: list[metrics.RaterAgreement]
    reliability: metrics.FloatArray
    prompts: metrics.PromptAgreementArrays


@dataclass(frozen=True)
class AgreementMaths:
    """Everything an agreement run computes, before it is stored (see ``agreement_maths``)."""

    summary: dict[str, Any]
    agreement: list[metrics.RaterAgreement]
    agreement_no_ties: list[metrics.RaterAgreement]
    quality: list[metrics.RaterQuality]
    reliability: metrics.FloatArray
    prompts: metrics.PromptAgreementArrays
    consensus: consensus.PromptConsensus


def agreement_maths(data: selectors.AgreementData) -> AgreementMaths:
    """The numbers of a run from its arrays; no database access.

    Repeats are left out of agreement and consensus (they only measure self-consistency);
    gold prompts count like any other. Consensus weighs each rater by reliability: their
    leave-one-out agreement rescaled so chance level is 0 (``consensus.reliability_weights``).
    A run computes the same in three steps so the database stores prompt rows meanwhile:
    ``prompt_maths``, the consensus block by block, then ``finish_maths``.
    """
    part = prompt_maths(data)
    result = consensus.prompt_consensus(part.table, part.reliability, consensus.BRADLEY_TERRY)
    return finish_maths(data, part, result)


def prompt_maths(data: selectors.AgreementData) -> PromptMaths:
    """Leave-one-out agreement, reliability weights and each prompt's agreement."""
    # One ranking per rater and prompt, once: the statistics share its pair labels.
    table = metrics.one_ranking_per_rater(data.agreement_table())
    agreement = metrics.rater_leave_one_out_agreement(table)
    reliability = consensus.reliability_weights(
        [np.nan if row.agreement is None else row.agreement for row in agreement],
        metrics.chance_agreement(table),
    )
    return PromptMaths(
        table=table,
        agreement=agreement,
        reliability=reliability,
        prompts=metrics.prompt_pairwise_agreement(table),
    )


RaterMaths = tuple[dict[str, Any], list[metrics.RaterAgreement], list[metrics.RaterQuality]]


def rater_maths(data: selectors.AgreementData, part: PromptMaths) -> RaterMaths:
    """Project metrics, agreement without ties and the raters' behaviour."""
    return (
        metrics.project_agreement(part.table),
        metrics.rater_leave_one_out_agreement(part.table, include_ties=False),
        metrics.rater_quality(data.table, data.context),
    )


def finish_maths(
    data: selectors.AgreementData,
    part: PromptMaths,
    result: consensus.PromptConsensus,
    raters: RaterMaths | None = None,
) -> AgreementMaths:
    """Project metrics and the raters' statistics (``rater_maths``, computed here unless
    given), joined with the prompt part."""
    if raters is None:
        raters = rater_maths(data, part)
    summary, agreement_no_ties, behaviour = raters
    return AgreementMaths(
        summary=summary,
        agreement=part.agreement,
        agreement_no_ties=agreement_no_ties,
        quality=behaviour,
        reliability=part.reliability,
        prompts=part.prompts,
        consensus=result,
    )


def _rater_scores(
    *, run_id: int, data: selectors.AgreementData, maths: AgreementMaths
) -> list[RaterScore]:
    rows = []
    for rater, user_id in enumerate(data.rater_user_ids):
        together = maths.agreement[rater]
        without_ties = maths.agreement_no_ties[rater]
        behaviour = maths.quality[rater]
        rows.append(
            RaterScore(
                run_id=run_id,
                rater_id=user_id,
                rankings=together.n_rankings,
                agreement=together.agreement,
                agreement_low=together.low,
                agreement_high=together.high,
                compared_pairs=together.n_pairs,
                gold_accuracy=behaviour.gold_accuracy,
                gold_pairs=behaviour.gold_pairs,
                self_consistency=behaviour.self_consistency,
                repeat_pairs=behaviour.repeat_pairs,
                first_shown_win_rate=behaviour.first_shown_win_rate,
                position_p_value=behaviour.position_p_value,
                position_pairs=behaviour.position_pairs,
                straight_lining_rate=behaviour.straight_lining_rate,
                median_seconds=behaviour.median_seconds,
                speed_ratio=behaviour.speed_ratio,
                tie_rate=behaviour.tie_rate,
                longer_win_rate=behaviour.longer_win_rate,
                details={
                    "agreement_no_ties": without_ties.agreement,
                    "agreement_no_ties_low": without_ties.low,
                    "agreement_no_ties_high": without_ties.high,
                    "compared_pairs_no_ties": without_ties.n_pairs,
                    "gold_rankings": behaviour.gold_rankings,
                    "repeat_rankings": behaviour.repeat_rankings,
                    "straight_lined": behaviour.straight_lined,
                    "straight_lining_chance": behaviour.straight_lining_chance,
                    "timed_rankings": behaviour.timed_rankings,
                    "labelled_pairs": behaviour.labelled_pairs,
                    "length_pairs": behaviour.length_pairs,
                    "reliability_weight": float(maths.reliability[rater]),
                },
            )
        )
    return rows


def _prompt_agreement_rows(
    *, run_id: int, data: selectors.AgreementData, maths: AgreementMaths
) -> Iterator[tuple[Any, ...]]:
    """(run, prompt, n_rankings, agreement, consensus, scores, method) per prompt.

    Consensus groups best first, responses within a group strongest first; scores are the
    fitted log-strengths, rounded to 4 decimals.
    """
    result = maths.consensus
    levels = np.where(np.isnan(result.levels), np.inf, result.levels)
    order = np.lexsort((-np.nan_to_num(result.strength, nan=-np.inf), levels), axis=1)
    ordered_levels = np.take_along_axis(levels, order, axis=1).tolist()
    ordered_ids = np.take_along_axis(data.response_ids, order, axis=1).tolist()
    ordered_scores = np.round(np.take_along_axis(result.strength, order, axis=1), 4).tolist()
    agreement = maths.prompts.agreement.tolist()
    n_rankings = maths.prompts.n_rankings.tolist()
    for prompt, prompt_id in enumerate(data.prompt_ids.tolist()):
        groups: list[list[int]] = []
        scores: dict[str, float] = {}
        previous = None
        for level, response_id, score in zip(
            ordered_levels[prompt], ordered_ids[prompt], ordered_scores[prompt], strict=True
        ):
            if level == np.inf:
                break
            if level != previous:
                groups.append([])
                previous = level
            groups[-1].append(response_id)
            scores[str(response_id)] = score
        value = agreement[prompt]
        yield (
            run_id,
            prompt_id,
            n_rankings[prompt],
            None if value != value else value,  # NaN: no two rankings of a common pair
            groups,
            scores,
            result.method,
        )


_PROMPT_AGREEMENT_FIELDS = (
    "run",
    "prompt",
    "n_rankings",
    "agreement",
    "consensus",
    "scores",
    "method",
)


def _prompt_agreements_store(
    *, run_id: int, data: selectors.AgreementData, part: PromptMaths, portable: bool = False
) -> consensus.PromptConsensus:
    """One PromptAgreement per prompt; returns the consensus they hold."""
    with _prompt_agreements_writing(
        run_id=run_id, data=data, part=part, portable=portable
    ) as result:
        return result


def _prompt_agreements_writing(
    *, run_id: int, data: selectors.AgreementData, part: PromptMaths, portable: bool = False
) -> AbstractContextManager[consensus.PromptConsensus]:
    """Fit the consensus and store one PromptAgreement per prompt; yields the consensus.

    COPY on PostgreSQL; batched INSERTs elsewhere, or with ``portable`` (which the tests
    use to hold the two paths to each other).
    """
    if db.is_postgresql() and not portable:
        return _prompt_agreements_copying(run_id=run_id, data=data, part=part)
    return _prompt_agreements_inserting(run_id=run_id, data=data, part=part)


@contextmanager
def _prompt_agreements_inserting(
    *, run_id: int, data: selectors.AgreementData, part: PromptMaths
) -> Iterator[consensus.PromptConsensus]:
    """The portable path: the rows are inserted in batches before the caller's block."""
    result = consensus.prompt_consensus(part.table, part.reliability)
    rows = _prompt_agreement_rows(run_id=run_id, data=data, maths=_with_consensus(part, result))
    attributes = [f"{name}_id" if name in ("run", "prompt") else name
                  for name in _PROMPT_AGREEMENT_FIELDS]  # fmt: skip
    while batch := list(islice(rows, BATCH_SIZE)):
        PromptAgreement.objects.bulk_create(
            PromptAgreement(**dict(zip(attributes, row, strict=True))) for row in batch
        )
    yield result


@contextmanager
def _prompt_agreements_copying(
    *, run_id: int, data: selectors.AgreementData, part: PromptMaths
) -> Iterator[consensus.PromptConsensus]:
    """The PostgreSQL path: each block of prompts is COPYed from a writer thread as soon as
    its consensus is fitted, so the server inserts one block while the next is fitted, and
    the caller's block runs while the server finishes; the COPY ends when it does.
    """
    fields = [PromptAgreement._meta.get_field(name) for name in _PROMPT_AGREEMENT_FIELDS]
    columns = ", ".join(
        connection.ops.quote_name(str(cast(Field, field).column)) for field in fields
    )
    table = connection.ops.quote_name(PromptAgreement._meta.db_table)
    blocks = []
    with connection.cursor() as cursor:
        raw_cursor = cursor.cursor
        writer = QueuedLibpqWriter(raw_cursor)
        with raw_cursor.copy(f"COPY {table} ({columns}) FROM STDIN", writer=writer) as copy:
            for start, stop, block in consensus.prompt_consensus_blocks(
                part.table, part.reliability
            ):
                blocks.append(block)
                if stop == start:
                    continue
                copy.write(
                    _prompt_agreement_copy_text(
                        run_id=run_id, data=data, prompts=part.prompts, result=block,
                        start=start, stop=stop,
                    )
                )  # fmt: skip
            yield _joined(blocks, part.table.k_max)


def _with_consensus(part: PromptMaths, result: consensus.PromptConsensus) -> AgreementMaths:
    return AgreementMaths(
        summary={},
        agreement=part.agreement,
        agreement_no_ties=[],
        quality=[],
        reliability=part.reliability,
        prompts=part.prompts,
        consensus=result,
    )


def _joined(blocks: list[consensus.PromptConsensus], k_max: int) -> consensus.PromptConsensus:
    return consensus.PromptConsensus(
        levels=np.concatenate([np.zeros((0, k_max)), *(b.levels for b in blocks)]),
        strength=np.concatenate([np.zeros((0, k_max)), *(b.strength for b in blocks)]),
        agreement=np.concatenate([np.zeros(0), *(b.agreement for b in blocks)]),
        n_rankings=np.concatenate([np.zeros(0, dtype=np.int64), *(b.n_rankings for b in blocks)]),
        method=blocks[0].method if blocks else consensus.BRADLEY_TERRY,
    )


def _prompt_agreement_copy_text(
    *,
    run_id: int,
    data: selectors.AgreementData,
    prompts: metrics.PromptAgreementArrays,
    result: consensus.PromptConsensus,
    start: int,
    stop: int,
) -> str:
    """The rows of prompts ``start`` to ``stop`` as COPY text, formatted in one ``%``.

    ``result`` is the consensus of those prompts. Hundreds of thousands of prompts per run:
    each row's shape (which slots are present, which start a new tie group) is one of few,
    so every row gets its shape's format string and one ``%`` over all the rows' values
    formats them in C rather than row by row in Python. Absent slots take their values
    with ``%.0s``, which prints nothing. Same content as ``_prompt_agreement_rows`` (the
    tests hold them to each other).
    """
    levels = np.where(np.isnan(result.levels), np.inf, result.levels)
    order = np.lexsort((-np.nan_to_num(result.strength, nan=-np.inf), levels), axis=1)
    levels = np.take_along_axis(levels, order, axis=1)
    ids = np.take_along_axis(data.response_ids[start:stop], order, axis=1)
    strength = np.take_along_axis(np.nan_to_num(result.strength), order, axis=1)
    # Rounded to 4 decimals as an integer first: %.4f of n / 10**4 prints n's digits.
    scores = np.rint(strength * 10**4).astype(np.int64) / 10**4
    k_max = levels.shape[1]
    # Per slot after the first: 0 absent, 1 tied with the slot before, 2 a new group.
    shapes = np.zeros(len(levels), dtype=np.int64)
    for slot in range(1, k_max):
        state = np.where(
            np.isfinite(levels[:, slot]), np.where(levels[:, slot] == levels[:, slot - 1], 1, 2), 0
        )
        shapes += state * 3 ** (slot - 1)
    method = result.method.replace("%", "%%")
    formats = {}
    for shape in np.unique(shapes).tolist():
        consensus_format, scores_format = "", ""
        for slot in range(1, k_max):
            state = shape // 3 ** (slot - 1) % 3
            consensus_format += ("%.0s", ", %d", "], [%d")[state]
            scores_format += ("%.0s%.0s", ', "%d": %.4f', ', "%d": %.4f')[state]
        formats[shape] = (
            f'{run_id}\t%d\t%d\t%s\t[[%d{consensus_format}]]\t{{"%d": %.4f{scores_format}}}'
            f"\t{method}\n"
        )
    agreement = prompts.agreement[start:stop]
    columns: list[list[Any]] = [
        data.prompt_ids[start:stop].tolist(),
        prompts.n_rankings[start:stop].tolist(),
        ["\\N" if value != value else value for value in agreement.tolist()],  # NaN: NULL
        *ids.T.tolist(),
    ]
    for slot in range(k_max):
        columns += [ids[:, slot].tolist(), scores[:, slot].tolist()]
    template = "".join([formats[shape] for shape in shapes.tolist()])
    return template % tuple(chain.from_iterable(zip(*columns, strict=True)))


def _agreement_run_findings(*, run_id: int) -> dict[str, int] | None:
    """Flags and adaptive overlap from a stored run; a failure here never fails the run."""
    try:
        return quality.apply_run_findings(run=AgreementRun.objects.get(pk=run_id))
    except Exception:
        logger.exception("agreement run %s: applying its findings failed", run_id)
        return None


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


def agreement_run_is_stale(*, project: Project) -> bool:
    """True when rankings arrived after every finished run and no live run will see them."""
    return (
        selectors.projects_with_unseen_rankings(cutoff=agreement_run_abandon_cutoff())
        .filter(pk=project.pk)
        .exists()
    )


def agreement_runs_fail_abandoned() -> int:
    """Mark runs whose message or worker was lost as failed, so new runs can be queued."""
    cutoff = agreement_run_abandon_cutoff()
    return AgreementRun.objects.filter(selectors.abandoned_run_filter(cutoff=cutoff)).update(
        status=RunStatus.FAILED,
        error="abandoned: no worker finished the run in time",
        finished_at=timezone.now(),
    )


def agreement_runs_queue_due() -> dict[str, int]:
    """Beat entry: queue a run for every project with rankings newer than its last run."""
    abandoned = agreement_runs_fail_abandoned()
    queued = 0
    due = selectors.projects_with_unseen_rankings(cutoff=agreement_run_abandon_cutoff())
    for project in list(due):  # few projects; no cursor held open across the writes
        agreement_run_request(project=project, trigger="schedule")
        queued += 1
    return {"queued": queued, "abandoned": abandoned}


# Rater page: undo and resubmit --------------------------------------------------------------

UNDO_SECONDS = 30
# The page counts the window down from when it heard back; allow for that round trip.
UNDO_GRACE_SECONDS = 5


def ranking_undo(*, assignment_id: int, rater: User) -> Ranking:
    """Reopen the task the rater just submitted, for `UNDO_SECONDS` after submitting.

    The assignment is leased to them again and the prompt counts one ranking fewer; the
    stored ranking stays (nothing is deleted) and is replaced, its old version kept in
    `revisions`, when they submit again. If they never do, it stands as it was.
    """
    with transaction.atomic():
        assignment = labeling_services.assignment_lock_for_finish(
            assignment_id=assignment_id, rater=rater
        )
        if assignment.status != AssignmentStatus.SUBMITTED:
            raise Conflict(
                f"only a submitted task can be reopened; this one is {assignment.status}",
                code="not_submitted",
            )
        now = timezone.now()
        window = timedelta(seconds=UNDO_SECONDS + UNDO_GRACE_SECONDS)
        if assignment.finished_at is None or now - assignment.finished_at > window:
            raise Conflict(
                f"too late to undo: a submit can be undone for {UNDO_SECONDS} seconds",
                code="undo_expired",
            )
        if assignment.expires_at <= now:
            raise Conflict(
                "too late to undo: your time on this task had run out", code="lease_expired"
            )
        ranking = Ranking.objects.get(assignment=assignment)
        labeling_services.assignment_reopen(assignment=assignment)
    return ranking


def _ranking_store(
    *,
    assignment: Assignment,
    rater: User,
    groups: list[list[int]],
    ratings: dict[str, dict[str, Any]],
    rationale: str,
    seconds: float | None,
    strength: int | None,
) -> Ranking:
    """Create the assignment's ranking, or replace the one a reopened task already has.

    Replacing keeps the earlier version in `revisions`, so one Ranking row per assignment
    counts once in agreement and exports however often it is undone.
    """
    # Only a reopened task (leased again, finished_at kept) can have a ranking already.
    existing = (
        Ranking.objects.select_for_update().filter(assignment=assignment).first()
        if assignment.finished_at is not None
        else None
    )
    if existing is None:
        return Ranking.objects.create(
            assignment=assignment,
            project_id=assignment.project_id,
            prompt_id=assignment.prompt_id,
            rater=rater,
            groups=groups,
            ratings=ratings,
            rationale=rationale,
            seconds=seconds,
            strength=strength,
            is_repeat=assignment.is_repeat,
        )
    now = timezone.now()
    existing.revisions = [
        *existing.revisions,
        {
            "groups": existing.groups,
            "ratings": existing.ratings,
            "rationale": existing.rationale,
            "seconds": existing.seconds,
            "strength": existing.strength,
            "submitted_at": (existing.updated_at or existing.created_at).isoformat(),
            "replaced_at": now.isoformat(),
        },
    ]
    existing.groups, existing.ratings, existing.rationale = groups, ratings, rationale
    existing.seconds, existing.strength, existing.updated_at = seconds, strength, now
    existing.save(
        update_fields=[
            "revisions",
            "groups",
            "ratings",
            "rationale",
            "seconds",
            "strength",
            "updated_at",
        ]
    )
    return existing


# Agreement runs after every N new rankings ---------------------------------------------------


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
        if selectors.agreement_run_pending(project=project, cutoff=agreement_run_abandon_cutoff()):
            return None
        last_seen = (
            AgreementRun.objects.filter(project=project, status=RunStatus.DONE)
            .order_by("-id")
            .values_list("last_ranking_id", flat=True)
            .first()
        ) or 0
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
