"""Reviewer decisions as a rater-quality signal: a writer whose demonstrations are often
rejected gets a `DEMONSTRATIONS_REJECTED` flag in the project's quality flags (the same
table, statuses and lead actions as the agreement run's flags), with the evidence.

The rule (`rejected_finding`) is pure; `writer_flag_refresh` runs after every review
decision, so the flag follows the evidence at once. It needs `flag_min_reviews` reviewed
demonstrations before it may fire (never one bad task). An open flag is refreshed in place
(`holds` false once the share falls back); a dismissed one opens again only when the
evidence is clearly worse, by the project's `reopen_when_worse_by` or twice the reviews,
as for the agreement run's flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q
from django.db.models.functions import Greatest, Length
from django.utils import timezone

from authoring.demonstrations.models import DemonstrationReview, ReviewDecision
from authoring.demonstrations.options import DemonstrationOptions
from labeling.models import AssignmentStatus, Membership, Project
from rankings.models import Flag, FlagCode, FlagStatus
from rankings.quality.thresholds import REOPEN_EVIDENCE_FACTOR, rules_from_settings

CODE = FlagCode.DEMONSTRATIONS_REJECTED
EXAMPLES_SHOWN = 5


@dataclass(frozen=True)
class WriterReviews:
    """How a writer's reviewed demonstrations fared."""

    reviewed: int
    accepted: int
    edited: int
    rejected: int
    mean_edit_share: float | None
    """Reviewer edits: characters changed over the longer text, averaged."""
    rejected_examples: tuple[tuple[int, str], ...] = ()
    """(demonstration id, reason) of the latest rejections."""


def rejected_finding(
    reviews: WriterReviews, *, min_reviews: int, max_rejected_share: float
) -> tuple[bool, dict[str, Any]] | None:
    """(fires, evidence), or None without enough reviews to judge."""
    if reviews.reviewed < min_reviews or reviews.reviewed == 0:
        return None
    share = reviews.rejected / reviews.reviewed
    fired = share > max_rejected_share
    edits = (
        f"; reviewers' edits changed {reviews.mean_edit_share:.0%} of the text on average"
        if reviews.mean_edit_share is not None
        else ""
    )
    return fired, {
        "reviewed": reviews.reviewed,
        "accepted": reviews.accepted,
        "edited": reviews.edited,
        "rejected": reviews.rejected,
        "rejected_share": round(share, 4),
        "mean_edit_share": None
        if reviews.mean_edit_share is None
        else round(reviews.mean_edit_share, 4),
        "threshold": max_rejected_share,
        "min_reviews": min_reviews,
        "rejected_examples": [
            {"demonstration_id": demonstration_id, "reason": reason}
            for demonstration_id, reason in reviews.rejected_examples
        ],
        "summary": (
            f"{reviews.rejected} of {reviews.reviewed} reviewed demonstrations rejected "
            f"({share:.0%}; flagged above {max_rejected_share:.0%}){edits}"
        ),
    }


def clearly_worse(before: dict[str, Any], now: dict[str, Any], *, worse_by: float) -> bool:
    """The rejected share rose by `worse_by`, or there are twice the reviews, still flagged."""
    old_share, new_share = before.get("rejected_share"), now.get("rejected_share")
    if (
        isinstance(old_share, int | float)
        and isinstance(new_share, int | float)
        and new_share - old_share >= worse_by - 1e-9
    ):
        return True
    old_count = before.get("reviewed")
    if isinstance(old_count, int) and old_count > 0:
        return bool(now["reviewed"] >= REOPEN_EVIDENCE_FACTOR * old_count)
    return True


def writer_reviews(*, project: Project, writer_id: int) -> WriterReviews:
    decided = DemonstrationReview.objects.filter(
        project=project, writer_id=writer_id, status=AssignmentStatus.SUBMITTED
    )
    counts = decided.aggregate(
        reviewed=Count("id"),
        accepted=Count("id", filter=Q(decision=ReviewDecision.ACCEPT)),
        edited=Count("id", filter=Q(decision=ReviewDecision.EDIT)),
        rejected=Count("id", filter=Q(decision=ReviewDecision.REJECT)),
    )
    edits = decided.filter(decision=ReviewDecision.EDIT, edit_distance__isnull=False).annotate(
        longest=Greatest(Length("edited_text"), Length("demonstration__text"))
    )
    shares = [
        distance / longest
        for distance, longest in edits.values_list("edit_distance", "longest")
        if longest
    ]
    examples = decided.filter(decision=ReviewDecision.REJECT).order_by("-finished_at", "-id")
    return WriterReviews(
        reviewed=counts["reviewed"],
        accepted=counts["accepted"],
        edited=counts["edited"],
        rejected=counts["rejected"],
        mean_edit_share=sum(shares) / len(shares) if shares else None,
        rejected_examples=tuple(
            examples.values_list("demonstration_id", "reason")[:EXAMPLES_SHOWN]
        ),
    )


def writer_flag_refresh(*, project: Project, writer_id: int) -> str:
    """Open, refresh or keep closed the writer's flag after a review; says which happened
    (`opened`, `updated`, `kept_dismissed`, `not_flagged`, `too_few_reviews`). Call inside
    the review's transaction."""
    options = DemonstrationOptions.of(project)
    finding = rejected_finding(
        writer_reviews(project=project, writer_id=writer_id),
        min_reviews=options.flag_min_reviews,
        max_rejected_share=options.flag_max_rejected_share,
    )
    if finding is None:
        return "too_few_reviews"
    fired, evidence = finding
    # One writer's flag at a time: two reviews finishing together must not both open it.
    Membership.objects.select_for_update().filter(project=project, user_id=writer_id).first()
    now = timezone.now()
    details = {**evidence, "holds": fired}
    flags = Flag.objects.filter(project=project, rater_id=writer_id, code=CODE)
    open_flag = flags.filter(status=FlagStatus.OPEN).first()
    if open_flag is not None:
        open_flag.evidence, open_flag.updated_at = details, now
        open_flag.save(update_fields=["evidence", "updated_at"])
        return "updated"
    if not fired:
        return "not_flagged"
    closed = flags.exclude(status=FlagStatus.OPEN).order_by("-id").first()
    worse_by = rules_from_settings(project.quality_settings).reopen_when_worse_by
    if closed is not None and not clearly_worse(closed.evidence, evidence, worse_by=worse_by):
        return "kept_dismissed"
    Flag.objects.create(
        project=project,
        rater_id=writer_id,
        code=CODE,
        evidence=details,
        created_at=now,
        updated_at=now,
    )
    return "opened"
