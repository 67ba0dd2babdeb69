"""Prompts: all-or-nothing imports (COPY on PostgreSQL, bulk_create elsewhere) and gold."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from core import db
from core.errors import InvalidInput, NotFound
from labeling.importing import PromptRecord, parse_import_body, validate_records
from labeling.models import (
    AuditAction,
    Project,
    Prompt,
    Response,
)
from labeling.services.audit import audit_record

IMPORT_BATCH_SIZE = 2000
ANALYZE_AFTER_ROWS = 1000


# Import ---------------------------------------------------------------------------------------


def prompts_import(*, project: Project, raw: bytes | str, by: User | None = None) -> list[int]:
    """Validate the whole payload, then write it in one transaction: all or nothing."""
    records = validate_records(parse_import_body(raw))
    with transaction.atomic():
        created = prompts_create(project=project, records=records)
        audit_record(
            action=AuditAction.PROMPTS_IMPORT,
            actor=by,
            project=project,
            target=f"{len(created)} prompts",
            changes={"created": len(created), "first_id": min(created, default=None)},
        )
    return created


@transaction.atomic
def prompts_create(*, project: Project, records: list[PromptRecord]) -> list[int]:
    """Insert prompts with their responses and gold rankings; returns the new prompt ids."""
    _refuse_existing_external_ids(project=project, records=records)
    if db.is_postgresql():
        return _prompts_copy(project=project, records=records)
    return _prompts_bulk_create(project=project, records=records)


def _prompts_bulk_create(*, project: Project, records: list[PromptRecord]) -> list[int]:
    """The portable path: prompts, then their responses and gold rankings, batch by batch."""
    created: list[int] = []
    for start in range(0, len(records), IMPORT_BATCH_SIZE):
        batch = records[start : start + IMPORT_BATCH_SIZE]
        prompts = Prompt.objects.bulk_create(
            [
                Prompt(
                    project=project,
                    external_id=record.external_id,
                    messages=record.messages,
                    metadata=record.metadata,
                    n_responses=len(record.responses),
                )
                for record in batch
            ]
        )
        responses = Response.objects.bulk_create(
            [
                Response(
                    prompt=prompt,
                    position=position,
                    external_id=item.external_id,
                    text=item.text,
                    model_name=item.model,
                    metadata=item.metadata,
                )
                for prompt, record in zip(prompts, batch, strict=True)
                for position, item in enumerate(record.responses)
            ]
        )
        _store_gold_rankings(prompts=prompts, records=batch, responses=responses)
        created.extend(prompt.pk for prompt in prompts)
    return created


def _prompts_copy(*, project: Project, records: list[PromptRecord]) -> list[int]:
    """PostgreSQL path: ids reserved from the sequences, rows streamed with COPY."""
    prompt_ids = db.reserve_ids(Prompt, len(records))
    response_ids = iter(db.reserve_ids(Response, sum(len(r.responses) for r in records)))
    now = timezone.now()
    prompt_rows, response_rows = [], []
    for prompt_id, record in zip(prompt_ids, records, strict=True):
        id_of_position = {}
        for position, item in enumerate(record.responses):
            response_id = next(response_ids)
            id_of_position[position] = response_id
            response_rows.append(
                (response_id, prompt_id, position, item.external_id, item.text, item.model,
                 item.metadata)
            )  # fmt: skip
        gold = (
            [[id_of_position[position] for position in group] for group in record.gold_ranking]
            if record.gold_ranking is not None
            else None
        )
        prompt_rows.append(
            (prompt_id, project.pk, record.external_id, record.messages, record.metadata, gold,
             gold is not None, False, 0, "", now, len(record.responses))
        )  # fmt: skip
    db.copy_rows(
        Prompt,
        ["id", "project", "external_id", "messages", "metadata", "gold_ranking", "is_gold",
         "is_complete", "extra_raters", "extra_reason", "created_at", "n_responses"],
        prompt_rows,
    )  # fmt: skip
    db.copy_rows(
        Response,
        ["id", "prompt", "position", "external_id", "text", "model_name", "metadata"],
        response_rows,
    )
    if len(prompt_rows) >= ANALYZE_AFTER_ROWS:
        # Fresh statistics keep the queue scan on its index right after a big import.
        db.analyze(Prompt, Response)
    return prompt_ids


def _refuse_existing_external_ids(*, project: Project, records: list[PromptRecord]) -> None:
    wanted = {record.external_id: record.line for record in records if record.external_id}
    if not wanted:
        return
    existing = set(
        Prompt.objects.filter(project=project, external_id__in=list(wanted)).values_list(
            "external_id", flat=True
        )
    )
    if existing:
        first = min(existing, key=lambda external_id: wanted[external_id])
        raise InvalidInput(
            f"line {wanted[first]}: external_id: {first!r} already exists in this project",
            field="external_id",
        )


def _store_gold_rankings(
    *, prompts: list[Prompt], records: list[PromptRecord], responses: list[Response]
) -> None:
    ids_by_prompt: dict[int, dict[int, int]] = {}
    for response in responses:
        ids_by_prompt.setdefault(response.prompt_id, {})[response.position] = response.pk
    gold_prompts = []
    for prompt, record in zip(prompts, records, strict=True):
        if record.gold_ranking is None:
            continue
        id_of = ids_by_prompt[prompt.pk]
        prompt.gold_ranking = [
            [id_of[position] for position in group] for group in record.gold_ranking
        ]
        prompt.is_gold = True
        gold_prompts.append(prompt)
    if gold_prompts:
        Prompt.objects.bulk_update(gold_prompts, ["gold_ranking", "is_gold"])


# Gold prompts -------------------------------------------------------------------------------


def prompt_for_lead(*, project: Project, prompt_ref: str | int) -> Prompt:
    """A project's prompt by id or by external id."""
    prompts = Prompt.objects.filter(project=project)
    text = str(prompt_ref).strip()
    prompt = prompts.filter(external_id=text).first() if text else None
    if prompt is None and text.isdigit():
        prompt = prompts.filter(pk=int(text)).first()
    if prompt is None:
        raise NotFound(f"no prompt {text!r} in this project", field="prompt")
    return prompt


def gold_ranking_from_labels(*, prompt: Prompt, text: str) -> list[list[int]]:
    """Read "A > B = C > D" (letters in import order) as tie groups of response ids."""
    ids = list(prompt.responses.order_by("position").values_list("id", flat=True))
    groups: list[list[int]] = []
    for part in text.replace(" ", "").upper().split(">"):
        group = []
        for label in part.split("="):
            index = ord(label) - ord("A") if len(label) == 1 else -1
            if not 0 <= index < len(ids):
                raise InvalidInput(
                    f"{label or '(empty)'!s} is not a response label A to {chr(64 + len(ids))}",
                    field="gold_ranking",
                )
            group.append(ids[index])
        groups.append(group)
    return groups


@transaction.atomic
def prompt_set_gold(
    *,
    project: Project,
    prompt: Prompt,
    gold_ranking: list[list[int]] | None,
    by: User | None = None,
) -> Prompt:
    """Mark a prompt as gold with its reference ranking, or (None) make it normal again.

    Gold prompts leave the normal queue and are served at the project's gold rate.
    """
    if prompt.project_id != project.pk:
        raise NotFound("prompt not found", field="prompt")
    before = prompt.gold_ranking
    if gold_ranking is None:
        prompt.gold_ranking, prompt.is_gold = None, False
    else:
        prompt.gold_ranking, prompt.is_gold = _clean_gold_groups(prompt, gold_ranking), True
    prompt.save(update_fields=["gold_ranking", "is_gold"])
    audit_record(
        action=AuditAction.GOLD_SET if prompt.is_gold else AuditAction.GOLD_CLEAR,
        actor=by,
        project=project,
        target=f"prompt {prompt.pk}" + (f" ({prompt.external_id})" if prompt.external_id else ""),
        changes={"gold_ranking": {"old": before, "new": prompt.gold_ranking}},
    )
    return prompt


def _clean_gold_groups(prompt: Prompt, raw: object) -> list[list[int]]:
    ids = set(prompt.responses.values_list("id", flat=True))
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(
            "gold_ranking: must be a non-empty list of tie groups", field="gold_ranking"
        )
    groups: list[list[int]] = []
    seen: set[int] = set()
    for index, group in enumerate(raw):
        members = group if isinstance(group, list) else [group]
        if not members:
            raise InvalidInput(f"gold_ranking[{index}]: is an empty group", field="gold_ranking")
        for member in members:
            if isinstance(member, bool) or not isinstance(member, int) or member not in ids:
                raise InvalidInput(
                    f"gold_ranking[{index}]: {member!r} is not a response of this prompt",
                    field="gold_ranking",
                )
            if member in seen:
                raise InvalidInput(
                    f"gold_ranking[{index}]: response {member} appears twice", field="gold_ranking"
                )
            seen.add(member)
        groups.append(list(members))
    if seen != ids:
        raise InvalidInput(
            "gold_ranking: must place every response exactly once", field="gold_ranking"
        )
    return groups
