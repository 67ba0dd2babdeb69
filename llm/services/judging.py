"""The AI judge: its template (editable, previewable), judge runs as `core.jobs` jobs, each
prompt judged in two shown orders with validated structured output.

A malformed answer is asked for once more, then the prompt is recorded as failed with the
reason; nothing invalid is ever stored as a verdict. Verdicts live in `JudgeVerdict`, one
per prompt and endpoint (the endpoint is the AI rater's identity), apart from human
rankings, so human agreement, rater flags and exports leave them out by construction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Sum
from django.utils import timezone

from core.errors import InvalidInput, NotFound
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
from labeling.models import MIN_RESPONSES, Project, Prompt, Response
from llm import judge
from llm.client import CallFailed, EndpointConfig, chat
from llm.concurrency import endpoint_slot
from llm.models import CallStatus, JudgeRun, JudgeTemplate, JudgeVerdict, ModelEndpoint
from llm.services.endpoints import endpoint_config, endpoint_for_project

logger = logging.getLogger(__name__)

JUDGE_TASK = "llm.tasks.judge_run"
SELECTIONS = ("all", "unjudged")
JUDGE_MAX_TOKENS = 1024
STORE_BATCH = 16
TEMPLATE_CHARS = 20_000


# Template ---------------------------------------------------------------------------------------


def judge_template_of(*, project: Project) -> tuple[str, str]:
    """(system, user) templates: the lead's, or the defaults."""
    row = JudgeTemplate.objects.filter(project=project).first()
    if row is None:
        return judge.DEFAULT_SYSTEM_TEMPLATE, judge.DEFAULT_USER_TEMPLATE
    return row.system_template, row.user_template


def judge_template_update(*, project: Project, system_template: str, user_template: str) -> None:
    for name, value in (("system_template", system_template), ("user_template", user_template)):
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput("must be non-empty text", field=name)
        if len(value) > TEMPLATE_CHARS:
            raise InvalidInput(f"must be at most {TEMPLATE_CHARS} characters", field=name)
    if "{responses}" not in system_template + user_template:
        raise InvalidInput("the judge must see {responses} somewhere", field="user_template")
    JudgeTemplate.objects.update_or_create(
        project=project,
        defaults={
            "system_template": system_template,
            "user_template": user_template,
            "updated_at": timezone.now(),
        },
    )


def judge_template_reset(*, project: Project) -> None:
    JudgeTemplate.objects.filter(project=project).delete()


def _context(project: Project) -> judge.JudgeContext:
    return judge.JudgeContext(
        guidelines=project.guidelines, rubric=project.rubric or [], allow_ties=project.allow_ties
    )


@dataclass(frozen=True)
class Shown:
    prompt_id: int
    response_ids: list[int]
    messages: list[list[dict[str, str]]]  # forward, reverse


def _shown_orders(
    project: Project, prompt: Prompt, texts: list[tuple[int, str]], templates: tuple[str, str]
) -> Shown:
    ids = [response_id for response_id, _ in texts]
    orders = [[text for _, text in texts], [text for _, text in reversed(texts)]]
    return Shown(
        prompt_id=prompt.pk,
        response_ids=ids,
        messages=[
            judge.render_messages(
                system_template=templates[0],
                user_template=templates[1],
                context=_context(project),
                conversation=prompt.messages,
                shown=shown,
            )
            for shown in orders
        ],
    )


def judge_preview(*, project: Project, prompt_id: int | None = None) -> dict[str, Any]:
    """The exact messages the judge is sent for a prompt (the first judgeable one by
    default), in both shown orders, with the structured-output schema."""
    prompts = Prompt.objects.filter(project=project, n_responses__gte=MIN_RESPONSES)
    prompt = (prompts.filter(pk=prompt_id) if prompt_id else prompts.order_by("pk")).first()
    if prompt is None:
        raise NotFound("no prompt with at least two responses to preview", field="prompt")
    texts = list(prompt.responses.order_by("position").values_list("pk", "text"))
    shown = _shown_orders(project, prompt, texts, judge_template_of(project=project))
    return {
        "prompt_id": prompt.pk,
        "response_ids": shown.response_ids,
        "orders": {"original": shown.messages[0], "reversed": shown.messages[1]},
        "response_format": judge.response_format(len(texts)),
    }


# Runs -------------------------------------------------------------------------------------------


def judge_run_create(*, project: Project, by: Any, endpoint_id: Any, prompts: Any) -> JudgeRun:
    if not isinstance(endpoint_id, int) or isinstance(endpoint_id, bool):
        raise InvalidInput("give the endpoint's id", field="endpoint")
    endpoint = endpoint_for_project(project=project, endpoint_id=endpoint_id)
    selection = _checked_selection(project=project, prompts=prompts)
    system_template, user_template = judge_template_of(project=project)
    with transaction.atomic():
        run = JudgeRun.objects.create(
            project=project,
            endpoint=endpoint,
            created_by=by,
            prompt_selection=selection,
            system_template=system_template,
            user_template=user_template,
        )
        job_enqueue(JudgeRun, job_id=run.pk, task_name=JUDGE_TASK)
    return run


def _checked_selection(*, project: Project, prompts: Any) -> str | list[int]:
    if isinstance(prompts, str) and prompts in SELECTIONS:
        return prompts
    if (
        not isinstance(prompts, list)
        or not prompts
        or not all(isinstance(item, int) and not isinstance(item, bool) for item in prompts)
    ):
        raise InvalidInput('prompts must be "all", "unjudged" or a list of ids', field="prompts")
    wanted = sorted(set(prompts))
    found = set(Prompt.objects.filter(project=project, pk__in=wanted).values_list("pk", flat=True))
    missing = [item for item in wanted if item not in found]
    if missing:
        raise InvalidInput(f"no prompt {missing[0]} in this project", field="prompts")
    return wanted


def judge_run_execute(*, job_id: int) -> dict[str, Any]:
    if not job_claim_or_check_back(JudgeRun, job_id=job_id, task_name=JUDGE_TASK):
        return {"job_id": job_id, "skipped": True}
    run = JudgeRun.objects.select_related("project", "endpoint").get(pk=job_id)
    try:
        with job_beating(JudgeRun, job_id=job_id, attempt=run.attempts):
            planned = _plan(run)
            job_heartbeat(JudgeRun, job_id=job_id, planned=planned)
            _judge_pending(run)
    except Exception as error:
        logger.exception("judge run %s failed", job_id)
        job_fail(JudgeRun, job_id=job_id, reason=describe_error(error), attempt=run.attempts)
        return {"job_id": job_id, "status": JobStatus.FAILED}
    sums = JudgeVerdict.objects.filter(run=run).aggregate(i=Sum("tokens_in"), o=Sum("tokens_out"))
    job_finish(
        JudgeRun,
        job_id=job_id,
        attempt=run.attempts,
        tokens_in=sums["i"] or 0,
        tokens_out=sums["o"] or 0,
    )
    return {"job_id": job_id, "status": JobStatus.DONE, "planned": planned}


def _plan(run: JudgeRun) -> int:
    prompts = Prompt.objects.filter(
        project_id=run.project_id, archived_at__isnull=True, n_responses__gte=MIN_RESPONSES
    )
    selection = run.prompt_selection
    if selection == "unjudged":
        judged = JudgeVerdict.objects.filter(
            prompt_id=OuterRef("pk"), endpoint_id=run.endpoint_id, status=CallStatus.DONE
        )
        prompts = prompts.exclude(Exists(judged))
    elif isinstance(selection, list):
        prompts = prompts.filter(pk__in=selection)
    prompt_ids = list(prompts.order_by("pk").values_list("pk", flat=True))
    existing = set(
        JudgeVerdict.objects.filter(endpoint_id=run.endpoint_id, prompt_id__in=prompt_ids)
        .exclude(run=run)
        .values_list("prompt_id", flat=True)
    )
    JudgeVerdict.objects.bulk_create(
        [
            JudgeVerdict(run=run, endpoint_id=run.endpoint_id, prompt_id=pk)
            for pk in prompt_ids
            if pk not in existing
        ],
        ignore_conflicts=True,
    )
    # A prompt judged before is judged again by this run; its verdict is replaced when done.
    JudgeVerdict.objects.filter(endpoint_id=run.endpoint_id, prompt_id__in=list(existing)).update(
        run=run, status=CallStatus.PENDING, error=""
    )
    return JudgeVerdict.objects.filter(run=run).count()


def _judge_pending(run: JudgeRun) -> None:
    pending = list(
        JudgeVerdict.objects.filter(run=run, status=CallStatus.PENDING).values_list(
            "pk", "prompt_id"
        )
    )
    if not pending:
        return
    project, endpoint = run.project, run.endpoint
    config = endpoint_config(endpoint)
    templates = (
        (run.system_template, run.user_template)
        if run.system_template
        else judge_template_of(project=project)
    )
    prompts = {p.pk: p for p in Prompt.objects.filter(pk__in=[pk for _, pk in pending])}
    texts: dict[int, list[tuple[int, str]]] = {}
    for response_id, prompt_id, text in (
        Response.objects.filter(prompt_id__in=list(prompts))
        .order_by("prompt_id", "position")
        .values_list("pk", "prompt_id", "text")
    ):
        texts.setdefault(prompt_id, []).append((response_id, text))
    shown = {
        verdict_id: _shown_orders(project, prompts[prompt_id], texts[prompt_id], templates)
        for verdict_id, prompt_id in pending
    }
    done: list[tuple[int, Shown, JudgedPrompt]] = []
    with ThreadPoolExecutor(max_workers=min(endpoint.concurrency, len(pending))) as pool:
        futures = {
            verdict_id: pool.submit(_judge_prompt, config, endpoint, item, project.allow_ties)
            for verdict_id, item in shown.items()
        }
        for verdict_id, future in futures.items():
            done.append((verdict_id, shown[verdict_id], future.result()))
            if len(done) >= STORE_BATCH:
                _store(done)
                done = []
                if not job_heartbeat(JudgeRun, job_id=run.pk, attempt=run.attempts):
                    for other in futures.values():
                        other.cancel()
                    return
    _store(done)


@dataclass(frozen=True)
class JudgedPrompt:
    verdicts: list[judge.Verdict] | None
    error: str
    tokens_in: int
    tokens_out: int


def _judge_prompt(
    config: EndpointConfig, endpoint: ModelEndpoint, shown: Shown, allow_ties: bool
) -> JudgedPrompt:
    """Both shown orders; a malformed answer is asked for once more."""
    verdicts: list[judge.Verdict] = []
    tokens_in = tokens_out = 0
    n = len(shown.response_ids)
    hold = (config.timeout_seconds + 5) * (config.max_retries + 1) + 60
    for order, messages in zip(("original", "reversed"), shown.messages, strict=True):
        problem = ""
        for _attempt in range(2):
            try:
                with endpoint_slot(
                    endpoint_id=endpoint.pk, limit=endpoint.concurrency, hold_seconds=hold
                ):
                    completion = chat(
                        config,
                        messages,
                        response_format=judge.response_format(n),
                        max_tokens=max(config.max_tokens, JUDGE_MAX_TOKENS),
                    )
            except CallFailed as failure:
                return JudgedPrompt(None, f"{order} order: {failure.reason}", tokens_in, tokens_out)
            tokens_in += completion.tokens_in
            tokens_out += completion.tokens_out
            try:
                verdicts.append(
                    judge.parse_verdict(completion.text, n_responses=n, allow_ties=allow_ties)
                )
                break
            except judge.InvalidVerdict as invalid:
                problem = str(invalid)
        else:
            return JudgedPrompt(
                None, f"{order} order: invalid answer twice ({problem})", tokens_in, tokens_out
            )
    return JudgedPrompt(verdicts, "", tokens_in, tokens_out)


def _store(done: Sequence[tuple[int, Shown, JudgedPrompt]]) -> None:
    now = timezone.now()
    rows = []
    for verdict_id, shown, judged in done:
        row = JudgeVerdict(
            pk=verdict_id, updated_at=now, tokens_in=judged.tokens_in, tokens_out=judged.tokens_out
        )
        if judged.verdicts is None:
            row.status, row.error = CallStatus.FAILED, judged.error[:500]
            row.groups, row.forward, row.reverse, row.consistent = [], [], [], None
            row.rationale = ""
            row.pairs = row.flipped_pairs = row.first_shown_wins = row.second_shown_wins = 0
        else:
            forward, reverse = judged.verdicts
            combined = judge.combine_orders(shown.response_ids, forward.groups, reverse.groups)
            n = len(shown.response_ids)
            row.status, row.error = CallStatus.DONE, ""
            row.groups = combined.groups
            row.forward = [[shown.response_ids[p] for p in g] for g in forward.groups]
            row.reverse = [[shown.response_ids[n - 1 - p] for p in g] for g in reverse.groups]
            row.consistent = combined.consistent
            row.pairs, row.flipped_pairs = combined.pairs, combined.flipped
            row.first_shown_wins = combined.first_shown_wins
            row.second_shown_wins = combined.second_shown_wins
            row.rationale = forward.rationale
        rows.append(row)
    JudgeVerdict.objects.bulk_update(
        rows,
        ["status", "error", "groups", "forward", "reverse", "consistent", "pairs",
         "flipped_pairs", "first_shown_wins", "second_shown_wins", "rationale", "tokens_in",
         "tokens_out", "updated_at"],
    )  # fmt: skip
