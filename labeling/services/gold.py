"""Gold prompts: a lead marks a prompt as gold with its reference ranking (or makes it
normal again), by id or external id, from tie groups or from "A > B = C" labels.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from core.errors import InvalidInput, NotFound
from labeling.models import AuditAction, Project, Prompt
from labeling.services.audit import audit_record


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
