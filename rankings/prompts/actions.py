"""Bulk actions from the prompt browser: each is a labeling service (gold through
`prompt_set_gold`, the one place that sets gold); this module only picks the prompts and,
for gold, takes the reference ranking from the latest run's consensus."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.contrib.auth.models import User
from django.db import transaction

from core.errors import InvalidInput, NotFound
from labeling import services as labeling_services
from labeling.models import Project, Prompt
from labeling.services.curation import BULK_LIMIT
from rankings.models import PromptAgreement
from rankings.runs import selectors as run_selectors

BULK_ACTIONS = {
    "gold": "Mark gold (consensus as the reference)",
    "ungold": "Unmark gold",
    "reopen": "Reopen for one more rater",
    "archive": "Archive",
    "unarchive": "Restore from the archive",
}


@dataclass(frozen=True)
class BulkResult:
    action: str
    changed: list[int]
    unchanged: list[dict[str, object]] = field(default_factory=list)  # {id, reason}


def prompts_bulk_action(
    *, project: Project, action: str, prompt_ids: Sequence[int], by: User, reason: str = ""
) -> BulkResult:
    if action not in BULK_ACTIONS:
        raise InvalidInput(f"action: must be one of {', '.join(BULK_ACTIONS)}", field="action")
    ids = sorted(set(prompt_ids))
    if not ids:
        raise InvalidInput("prompt_ids: choose at least one prompt", field="prompt_ids")
    if len(ids) > BULK_LIMIT:
        raise InvalidInput(f"prompt_ids: at most {BULK_LIMIT} at a time", field="prompt_ids")
    if action in ("archive", "unarchive"):
        changed = labeling_services.prompts_archive(
            project=project, prompt_ids=ids, archived=action == "archive", by=by
        )
        why = "already archived" if action == "archive" else "not archived"
    elif action == "reopen":
        changed = labeling_services.prompts_reopen(
            project=project, prompt_ids=ids, by=by, reason=reason
        )
        why = "gold or archived prompts are not in the queue"
    else:
        return _gold(project=project, action=action, ids=ids, by=by)
    done = set(changed)
    return BulkResult(
        action=action,
        changed=changed,
        unchanged=[{"id": pk, "reason": why} for pk in ids if pk not in done],
    )


@transaction.atomic
def _gold(*, project: Project, action: str, ids: list[int], by: User) -> BulkResult:
    prompts = list(Prompt.objects.filter(project=project, pk__in=ids).order_by("pk"))
    missing = set(ids) - {prompt.pk for prompt in prompts}
    if missing:
        raise NotFound(f"prompt_ids: no prompt {min(missing)} in this project", field="prompt_ids")
    consensus = _consensus_by_prompt(project=project, ids=ids) if action == "gold" else {}
    changed, unchanged = [], []
    for prompt in prompts:
        if action == "ungold":
            if not prompt.is_gold:
                unchanged.append({"id": prompt.pk, "reason": "not gold"})
                continue
            labeling_services.prompt_set_gold(
                project=project, prompt=prompt, gold_ranking=None, by=by
            )
        else:
            if prompt.is_gold:
                unchanged.append({"id": prompt.pk, "reason": "already gold"})
                continue
            reference = consensus.get(prompt.pk)
            if not reference:
                unchanged.append({"id": prompt.pk, "reason": "no consensus yet"})
                continue
            try:
                labeling_services.prompt_set_gold(
                    project=project, prompt=prompt, gold_ranking=reference, by=by
                )
            except InvalidInput as error:
                unchanged.append({"id": prompt.pk, "reason": error.message})
                continue
        changed.append(prompt.pk)
    return BulkResult(action=action, changed=changed, unchanged=unchanged)


def _consensus_by_prompt(*, project: Project, ids: list[int]) -> dict[int, list[list[int]]]:
    run = run_selectors.latest_agreement_run(project=project)
    if run is None:
        return {}
    rows = PromptAgreement.objects.filter(run=run, prompt_id__in=ids).values_list(
        "prompt_id", "consensus"
    )
    return {
        prompt_id: [[int(member) for member in group] for group in groups]
        for prompt_id, groups in rows
        if groups
    }
