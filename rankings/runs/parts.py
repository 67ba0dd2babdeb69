"""An agreement run part by part: the project's prompts in id ranges, each read from the
database and computed on its own (``streamed``), in two passes, by the worker running the
run and by any other worker that takes a part's message.

Each part is a job of the one lifecycle (``AgreementRunPart``: claimed by a conditional
UPDATE, beating, finished or failed conditionally), so a part is computed once however
many workers see its message, and a part whose worker died is taken again. The worker
running the run sends a message per part, then works through the parts itself — claiming
those no other worker has — until all are done, and merges what they gave: with one worker
it computes every part, with more each takes a share (the join of the fan-out is this
worker; a part another worker computed leaves its sums in its row). Between the passes it
fits the reliability model over every part's labels and stores what pass two needs.

Memory is a part's block, the bootstrap's prompt types, a few arrays per rater and, for the
reliability fit between the passes, every part's labels in their compact form (about 2
bytes per label and 2 to 3 per pair of responses: ~20 bytes a ranking at K=4). The labels
and the blocks for pass two wait in files of a temporary folder until they are needed. On
PostgreSQL the run's worker reads and stores parts on a side thread (``side``) while it
computes.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min, Q
from django.utils import timezone

from core import db, jobs, memory
from core.jobs import JobStatus
from labeling.models import Project, Prompt, Response
from rankings.models import (
    AgreementRun,
    AgreementRunPart,
    PromptAgreement,
    Ranking,
    RaterScore,
)
from rankings.runs import payloads, storage, streamed
from rankings.runs import postgresql as postgresql_reader
from rankings.runs.data import AgreementData, agreement_data, excluded_rater_ids
from rankings.runs.raw import PromptRange
from rankings.runs.side import SideThread
from rankings.runs.streamed import FirstSums, PromptResults, RunResult, RunState, SecondSums
from rankings.stats.label_blocks import LabelBlock
from rankings.stats.reliability import ReliabilityFit
from rankings.stats.tables import IntArray

logger = logging.getLogger(__name__)

PART_TASK = "rankings.tasks.agreement_run_part"
"""The registered name of the part task (``rankings.runs.tasks``)."""
FIRST, SECOND = 1, 2
_SCOPE = 0  # the phase of the row holding the run's scope, then its state for pass two
POLL_SECONDS = 0.2


class PartFailed(RuntimeError):
    """A part of the run failed: the run fails with its reason."""


@dataclass(frozen=True)
class RunScope:
    """What every part of a run shares: the rankings it reads and how it indexes them."""

    project_id: int
    up_to_id: int
    excluded: IntArray
    rater_user_ids: IntArray  # sorted: a rater's index is its place here
    k_max: int


def run_scope(*, project: Project, up_to_id: int) -> RunScope:
    """The raters with a counted ranking up to ``up_to_id`` (``counted_rater_ids``) and the
    most responses a prompt of the project has."""
    excluded = excluded_rater_ids(project=project)
    raters = counted_rater_ids(project=project, up_to_id=up_to_id, excluded=excluded)
    top = Response.objects.filter(prompt__project=project).aggregate(top=Max("position"))["top"]
    return RunScope(
        project_id=project.pk,
        up_to_id=up_to_id,
        excluded=np.array(excluded, dtype=np.int64),
        rater_user_ids=np.array(raters, dtype=np.int64),
        k_max=0 if top is None else int(top) + 1,
    )


def counted_rater_ids(*, project: Project, up_to_id: int, excluded: list[int]) -> list[int]:
    """The raters with a ranking of the project up to ``up_to_id``, sorted, less the
    excluded: one index probe per rater on PostgreSQL, a DISTINCT elsewhere."""
    if db.is_postgresql():
        return postgresql_reader.counted_rater_ids(
            project_id=project.pk, up_to_id=up_to_id, excluded=excluded
        )
    raters = (
        Ranking.objects.filter(project=project, id__lte=up_to_id)
        .exclude(rater_id__in=excluded)
        .order_by("rater_id")
        .values_list("rater_id", flat=True)
        .distinct()
    )
    return list(raters)


def prompt_ranges(*, project: Project, part_prompts: int | None = None) -> list[PromptRange]:
    """The project's prompt ids in ranges ``(low, high]`` of at most ``part_prompts`` ids."""
    size = part_prompts or settings.AGREEMENT_PART_PROMPTS
    bounds = Prompt.objects.filter(project=project).aggregate(low=Min("id"), high=Max("id"))
    if bounds["low"] is None:
        return []
    low, high = bounds["low"] - 1, bounds["high"]
    count = max(1, math.ceil((high - low) / size))
    edges = [low + (high - low) * number // count for number in range(count + 1)]
    return list(itertools.pairwise(edges))


def read_block(
    scope: RunScope, prompts: PromptRange, readers: postgresql_reader.Readers | None = None
) -> AgreementData:
    """A part's rankings, from the read replica when one is configured (``readers``: the
    PostgreSQL reader's threads and connections kept from part to part)."""
    with db.replica_reads():
        project = Project.objects.get(pk=scope.project_id)
        data = agreement_data(
            project=project,
            up_to_id=scope.up_to_id,
            prompts=prompts,
            excluded=scope.excluded.tolist(),
            readers=readers,
        )
    return streamed.in_scope(data, scope.rater_user_ids, scope.k_max)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# The run's side -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartsOutcome:
    result: RunResult
    n_prompt_rows: int


class RunParts:
    """The run's side: creates the parts of each pass, works through them, merges.

    ``beat`` is called between parts and answers whether the run is still this worker's.
    """

    def __init__(self, run: AgreementRun, *, attempt: int, up_to_id: int, folder: Path) -> None:
        self.run = run
        self.attempt = attempt
        self.folder = folder
        self.side: SideThread[AgreementData] | None = None
        self.readers: postgresql_reader.Readers | None = None
        with db.replica_reads():
            self.scope = run_scope(project=run.project, up_to_id=up_to_id)
            # A project without prompts still gets its (empty) run: one part of no prompts.
            self.ranges = prompt_ranges(project=run.project) or [(0, 0)]

    def beat(self) -> bool:
        return jobs.job_heartbeat(AgreementRun, job_id=self.run.pk, attempt=self.attempt)

    def _read_and_keep(self, index: int) -> AgreementData:
        """Part ``index``'s block (on the side thread), also kept in the run's folder for
        pass two: written there off the computing thread (~1 GB at 10M rankings)."""
        block = read_block(self.scope, self.ranges[index], self.readers)
        _write(_block_path(self.folder, index), payloads.to_bytes(block=block))
        return block

    def compute(self) -> PartsOutcome | None:
        self.side = SideThread.when_safe(self._read_and_keep, len(self.ranges))
        if self.side is not None:
            self.readers = postgresql_reader.Readers()
        try:
            return self._compute()
        finally:
            if self.side is not None:
                self.side.close()
            if self.readers is not None:
                self.readers.close()

    def _compute(self) -> PartsOutcome | None:
        clear_parts(run_id=self.run.pk)
        AgreementRunPart.objects.create(
            run=self.run, attempt=self.attempt, phase=_SCOPE, index=0, prompt_low=0,
            prompt_high=0, status=JobStatus.DONE, payload=payloads.to_bytes(scope=self.scope),
        )  # fmt: skip
        if not self._pass(FIRST):
            return None
        first = self._merged_first()
        if first is None:
            return None
        state = streamed.run_state(first, self._fit())
        AgreementRunPart.objects.filter(run=self.run, attempt=self.attempt, phase=_SCOPE).update(
            payload=payloads.to_bytes(scope=self.scope, state=state)
        )
        if not self.beat() or not self._pass(SECOND, state):
            return None
        second = self._merged_second()
        return PartsOutcome(streamed.finish(first, second, state), second.n_prompts)

    # A pass: its parts, sent to other workers, and worked through here.

    def _pass(self, phase: int, state: RunState | None = None) -> bool:
        parts = AgreementRunPart.objects.bulk_create(
            AgreementRunPart(
                run=self.run, attempt=self.attempt, phase=phase, index=index,
                prompt_low=low, prompt_high=high,
            )
            for index, (low, high) in enumerate(self.ranges)
        )  # fmt: skip
        if len(parts) > 1 and not current_app.conf.task_always_eager:
            for part in parts:
                jobs.job_enqueue(AgreementRunPart, job_id=part.pk, task_name=PART_TASK)
        return self._work_through(phase, state)

    def _work_through(self, phase: int, state: RunState | None) -> bool:
        """Claim and compute this pass's parts until every one is done; False when the run
        stopped being this worker's. A part another worker claimed and then went silent on
        is claimed again here once its heartbeat is stale.

        With a side thread, pass one claims the part after the one it computes (its block is
        read meanwhile), so no read ahead is for a part another worker takes."""
        ahead: AgreementRunPart | None = None
        while True:
            part, ahead = ahead or self._claim_next(phase), None
            if part is not None:
                if phase == FIRST and self.side is not None:
                    ahead = self._claim_next(phase)
                self._compute_own(part, state, ahead)
                if not self.beat():
                    return False
                continue
            if self.side is not None:
                self.side.drain()  # this worker's last part is finished before it looks
            statuses = dict(
                AgreementRunPart.objects.filter(run=self.run, attempt=self.attempt, phase=phase)
                .values_list("status", "error")
                .order_by("status")
            )
            if JobStatus.FAILED in statuses:
                raise PartFailed(f"a part of the run failed: {statuses[JobStatus.FAILED]}")
            if set(statuses) <= {JobStatus.DONE}:
                return True
            if not self.beat():
                return False
            time.sleep(POLL_SECONDS)

    def _claim_next(self, phase: int) -> AgreementRunPart | None:
        """A part of the pass claimed by this worker; None when none is left to claim."""
        while True:
            part_id = claimable_part(run_id=self.run.pk, attempt=self.attempt, phase=phase)
            if part_id is None:
                return None
            if jobs.job_claim(AgreementRunPart, job_id=part_id):
                return AgreementRunPart.objects.get(pk=part_id)

    def _compute_own(
        self, part: AgreementRunPart, state: RunState | None, ahead: AgreementRunPart | None
    ) -> None:
        """A part this worker claimed, its database work on the side thread when there is
        one: pass one's block read there while the part before it is computed (and the read
        of ``ahead``, the next part claimed, started), pass two's prompt rows stored there
        while the next part is computed."""
        side = self.side
        if side is None:
            compute_part(part, self.scope, state, folder=self.folder, own=True)
            return
        attempt = part.attempts
        if part.phase == FIRST:
            reading = side.read(part.index)
            if ahead is not None:
                side.prefetch(ahead.index)
            with jobs.job_beating(AgreementRunPart, job_id=part.pk, attempt=attempt):
                _first(part, reading.result(), attempt, self.folder, keep_block=False)
            return
        assert state is not None
        with jobs.job_beating(AgreementRunPart, job_id=part.pk, attempt=attempt):
            block = _own_block(part, self.scope, self.folder)
            second, rows = streamed.second_pass(block, state)

        def store() -> int:
            with jobs.job_beating(AgreementRunPart, job_id=part.pk, attempt=attempt):
                return _stored_second(part, block, second, rows, attempt, self.folder)

        side.store(store)

    def _others(self, phase: int) -> Iterator[tuple[int, bytes]]:
        """(index, payload) of the pass's parts another worker computed."""
        rows = AgreementRunPart.objects.filter(
            run=self.run, attempt=self.attempt, phase=phase, payload__isnull=False
        ).values_list("index", "payload")
        for index, payload in rows.iterator(chunk_size=1):
            yield index, bytes(payload or b"")

    def _merged_first(self) -> FirstSums | None:
        for index, payload in self._others(FIRST):
            _write(self.folder / f"first-{index}", payload)
            _write(self.folder / f"labels-{index}", payload)
        merged: FirstSums | None = None
        for index in range(len(self.ranges)):
            first = payloads.from_bytes(_read(self.folder / f"first-{index}"), first=FirstSums)
            part = first["first"]
            merged = part if merged is None else streamed.merge_first([merged, part])
        return merged

    def _fit(self) -> ReliabilityFit:
        """The reliability fit over every part's labels, read once into memory (the fit
        passes over them once per iteration) and let go when it is done."""
        labels = list(self._label_blocks())
        return streamed.fit_blocks(labels, len(self.scope.rater_user_ids))

    def _label_blocks(self) -> Iterator[LabelBlock]:
        for index in range(len(self.ranges)):
            path = self.folder / f"labels-{index}"
            yield payloads.from_bytes(_read(path), labels=LabelBlock)["labels"]
            path.unlink()

    def _merged_second(self) -> SecondSums:
        merged: SecondSums | None = None
        for index, payload in self._others(SECOND):
            _write(self.folder / f"second-{index}", payload)
        for index in range(len(self.ranges)):
            second = payloads.from_bytes(_read(self.folder / f"second-{index}"), second=SecondSums)
            part = second["second"]
            merged = part if merged is None else streamed.merge_second([merged, part])
        assert merged is not None
        return merged


def claimable_part(*, run_id: int, attempt: int, phase: int) -> int | None:
    """A part of the pass no worker has, or whose worker went silent."""
    silent = timezone.now() - jobs.stale_after()
    return (
        AgreementRunPart.objects.filter(run_id=run_id, attempt=attempt, phase=phase)
        .filter(Q(status=JobStatus.QUEUED) | Q(status=JobStatus.RUNNING, heartbeat_at__lt=silent))
        .order_by("index")
        .values_list("pk", flat=True)
        .first()
    )


# Either side: one part --------------------------------------------------------------------------


def compute_part(
    part: AgreementRunPart,
    scope: RunScope,
    state: RunState | None,
    *,
    folder: Path | None,
    own: bool,
) -> int:
    """Compute a claimed part and finish it; the prompt rows it stored.

    The run's own parts keep what they give in ``folder``; another worker's go into the
    part's row. Pass two stores the part's prompt rows in the transaction that finishes it,
    so a part retaken from a silent worker never stores them twice.
    """
    prompts = (part.prompt_low, part.prompt_high)
    attempt = part.attempts
    with jobs.job_beating(AgreementRunPart, job_id=part.pk, attempt=attempt):
        if part.phase == SECOND and folder is not None:
            block = _own_block(part, scope, folder)
        else:
            block = read_block(scope, prompts)
        if part.phase == FIRST:
            return _first(part, block, attempt, folder if own else None, keep_block=True)
        assert state is not None
        return _second(part, block, state, attempt, folder if own else None)


def _first(
    part: AgreementRunPart,
    block: AgreementData,
    attempt: int,
    folder: Path | None,
    *,
    keep_block: bool,
) -> int:
    """Pass one of a part; in ``folder`` (the run's own parts) its sums, its labels and,
    with ``keep_block``, its block for pass two (the side thread keeps the blocks it reads)."""
    first, labels = streamed.first_pass(block)
    if folder is not None:
        _write(folder / f"first-{part.index}", payloads.to_bytes(first=first))
        _write(folder / f"labels-{part.index}", payloads.to_bytes(labels=labels))
        if keep_block:
            _write(_block_path(folder, part.index), payloads.to_bytes(block=block))
        payload = None
    else:
        payload = payloads.to_bytes(first=first, labels=labels)
    _finish_part(part, attempt, payload)
    return 0


def _own_block(part: AgreementRunPart, scope: RunScope, folder: Path) -> AgreementData:
    """A pass-two part's block: as this worker read it in pass one, else from the database
    (a part another worker computed in pass one)."""
    block_path = _block_path(folder, part.index)
    if block_path.exists():
        block: AgreementData = payloads.from_bytes(_read(block_path), block=AgreementData)["block"]
        return block
    return read_block(scope, (part.prompt_low, part.prompt_high))


def _second(
    part: AgreementRunPart,
    block: AgreementData,
    state: RunState,
    attempt: int,
    folder: Path | None,
) -> int:
    second, rows = streamed.second_pass(block, state)
    return _stored_second(part, block, second, rows, attempt, folder)


def _stored_second(
    part: AgreementRunPart,
    block: AgreementData,
    second: SecondSums,
    rows: PromptResults,
    attempt: int,
    folder: Path | None,
) -> int:
    """Store a pass-two part's prompt rows and finish it, in one transaction."""
    payload = payloads.to_bytes(second=second)
    with transaction.atomic():
        stored = store_prompt_rows(run_id=part.run_id, block=block, rows=rows)
        if folder is not None:
            _write(folder / f"second-{part.index}", payload)
        if not _finish_part(part, attempt, None if folder is not None else payload):
            transaction.set_rollback(True)
            return 0
    return stored


def _finish_part(part: AgreementRunPart, attempt: int, payload: bytes | None) -> bool:
    return jobs.job_finish(
        AgreementRunPart, job_id=part.pk, attempt=attempt, payload=payload, worker=worker_name()
    )


def store_prompt_rows(*, run_id: int, block: AgreementData, rows: PromptResults) -> int:
    """A block's prompt rows (COPY on PostgreSQL, batched INSERTs elsewhere)."""
    return storage.prompt_rows_store(
        run_id=run_id, data=block, prompts=rows.prompts, result=rows.consensus
    )


def part_compute(*, part_id: int) -> dict[str, Any]:
    """A worker's side: claim a part by its message and compute it into its row."""
    if not jobs.job_claim(AgreementRunPart, job_id=part_id):
        return {"part_id": part_id, "skipped": True}
    part = AgreementRunPart.objects.get(pk=part_id)
    try:
        stored = (
            AgreementRunPart.objects.filter(run_id=part.run_id, attempt=part.attempt, phase=_SCOPE)
            .values_list("payload", flat=True)
            .first()
        )
        if not stored:
            raise PartFailed("the run's scope is missing")
        kinds: dict[str, type[Any]] = {"scope": RunScope}
        if part.phase == SECOND:
            kinds["state"] = RunState
        shared = payloads.from_bytes(bytes(stored), **kinds)
        with memory.large_buffers_kept():
            rows = compute_part(part, shared["scope"], shared.get("state"), folder=None, own=False)
    except Exception as error:
        logger.exception("part %s of agreement run %s failed", part_id, part.run_id)
        jobs.job_fail(
            AgreementRunPart, job_id=part_id, reason=jobs.describe_error(error),
            attempt=part.attempts,
        )  # fmt: skip
        return {"part_id": part_id, "status": JobStatus.FAILED}
    return {"part_id": part_id, "status": JobStatus.DONE, "prompt_rows": rows}


def clear_parts(*, run_id: int) -> None:
    """Forget a run's parts, prompt rows and scores (before an attempt starts over, after a
    failure)."""
    AgreementRunPart.objects.filter(run_id=run_id).delete()
    PromptAgreement.objects.filter(run_id=run_id).delete()
    RaterScore.objects.filter(run_id=run_id).delete()


def clear_run_parts(run_id: int) -> None:
    """``clear_parts`` for the job sweep's ``on_abandoned``."""
    clear_parts(run_id=run_id)


def forget_parts(*, run_id: int) -> None:
    """A stored run keeps the record of its parts (which worker computed which, when), not
    what they computed."""
    AgreementRunPart.objects.filter(run_id=run_id, phase=_SCOPE).delete()
    AgreementRunPart.objects.filter(run_id=run_id, payload__isnull=False).update(payload=None)


def _block_path(folder: Path, index: int) -> Path:
    return folder / f"block-{index}"


def _write(path: Path, payload: bytes) -> None:
    path.write_bytes(payload)


def _read(path: Path) -> bytes:
    return path.read_bytes()
