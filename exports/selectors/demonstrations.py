"""Reads for the SFT exports: a project's demonstrations in id batches (flat memory), as the
pure format module's `DemonstrationData`.

The export's parameters filter them through the same declarations as rankings
(`exports.selectors.filters`): prompt conditions on their prompt, rater conditions
(excluded or flagged raters, creation dates) on their writer. Accepted demonstrations
(as written, or as the reviewer edited them) by default; with `include_unreviewed` also
those not routed to review or still waiting; rejected ones never.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import F, OuterRef, QuerySet, Subquery

from authoring.demonstrations.models import (
    ACCEPTED_STATUSES,
    Demonstration,
    DemonstrationReview,
    DemonstrationStatus,
)
from exports.formats.sft import DemonstrationData
from exports.pairs import pseudonymous_rater_key
from exports.selectors.filters import export_filters, prompts_read
from labeling.models import AssignmentStatus, Project

BATCH = 2_000


def exported_demonstrations(*, project: Project, params: dict[str, Any]) -> QuerySet[Demonstration]:
    """The demonstrations an SFT export with these (cleaned) parameters takes, by id."""
    statuses: list[str] = list(ACCEPTED_STATUSES)
    if params["include_unreviewed"]:
        statuses += [DemonstrationStatus.UNREVIEWED, DemonstrationStatus.PENDING_REVIEW]
    filters = export_filters(project=project, params=params)
    prompts = prompts_read(project=project, filters=filters).values("id")
    # The rater conditions name `rater_id`: here the writer.
    rows = Demonstration.objects.filter(
        project=project, status__in=statuses, prompt_id__in=prompts
    ).annotate(rater_id=F("writer_id"))
    for condition in filters.rankings:
        rows = rows.filter(condition)
    return rows.order_by("id")


def demonstration_batches(
    *, project: Project, params: dict[str, Any], batch_size: int = BATCH
) -> Iterator[list[DemonstrationData]]:
    """The export's demonstrations in id order, a keyset batch at a time."""
    decided = DemonstrationReview.objects.filter(
        demonstration=OuterRef("pk"), status=AssignmentStatus.SUBMITTED
    )
    rows = exported_demonstrations(project=project, params=params).annotate(
        reviewer_id=Subquery(decided.values("reviewer_id")[:1]),
        review_edit_distance=Subquery(decided.values("edit_distance")[:1]),
    )
    salt = project.rater_key_salt
    last_id = 0
    while True:
        batch = list(
            rows.filter(pk__gt=last_id).values_list(
                "pk",
                "prompt_id",
                "prompt__external_id",
                "prompt__messages",
                "final_text",
                "writer_id",
                "mode",
                "status",
                "reviewer_id",
                "edit_distance",
                "review_edit_distance",
                "original_response_id",
            )[:batch_size]
        )
        if not batch:
            return
        yield [_data(row, salt) for row in batch]
        last_id = batch[-1][0]


def _data(row: tuple[Any, ...], salt: str) -> DemonstrationData:
    (pk, prompt_id, external_id, messages, text, writer_id, mode, status, reviewer_id,
     edit_distance, review_edit_distance, original_response_id) = row  # fmt: skip
    return DemonstrationData(
        demonstration_id=pk,
        prompt_id=prompt_id,
        prompt_external_id=external_id,
        messages=tuple((message["role"], message["content"]) for message in messages),
        text=text,
        rater_key=pseudonymous_rater_key(salt, writer_id),
        mode=mode,
        review_status=status,
        reviewer_key=None if reviewer_id is None else pseudonymous_rater_key(salt, reviewer_id),
        edit_distance=edit_distance,
        review_edit_distance=review_edit_distance,
        original_response_id=original_response_id,
    )
