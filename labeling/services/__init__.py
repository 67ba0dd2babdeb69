"""Writes for the labeling app, one module per concern; this package is their one
interface (`from labeling import services`):

- `audit`: the audit log's one write, `audit_record`;
- `projects`: projects, members, invites and sign-up;
- `prompts`: imports;
- `gold`: gold prompts and their reference rankings;
- `curation`: a lead's later changes to prompts — archive, reopen, edit responses;
- `queue`: the lead's hand on the queue — releasing a stuck lease;
- `leases`: the queue — leasing under the overlap rules;
- `finishing`: finishing a lease — the submit's lock and slot, skipping, extra raters;
- `queue_sql`: the rater loop's hot statements, written out as SQL;
- `rater_flow`: what the rater page adds to a lease (following task, renewal, undo, progress).
"""

from __future__ import annotations

from labeling.services.audit import audit_record, field_changes
from labeling.services.curation import (
    prompt_content_update,
    prompt_edit_refusal,
    prompt_has_work,
    prompts_archive,
    prompts_reopen,
)
from labeling.services.finishing import (
    assignment_claim_slot,
    assignment_for_rater,
    assignment_lock_for_finish,
    assignment_mark_submitted,
    assignment_skip,
    assignment_submitted_statements,
    prompts_request_extra_raters,
)
from labeling.services.gold import gold_ranking_from_labels, prompt_for_lead, prompt_set_gold
from labeling.services.leases import (
    LEASE_ATTEMPTS,
    lease_new,
    lease_next_assignment,
    occupied_assignments,
    prompt_overlap,
    rater_membership,
    require_active_rater,
)
from labeling.services.projects import (
    USERNAME_RULE,
    assignments_release_for_rater,
    invite_accept,
    invite_create,
    invite_usable,
    member_update,
    membership_lock,
    project_create,
    project_update,
    prompts_completion_refresh,
    refuse_acting_on_oneself,
    user_signup_with_invite,
    username_validate,
)
from labeling.services.prompts import (
    IMPORT_BATCH_SIZE,
    prompts_create,
    prompts_import,
    prompts_import_file,
)
from labeling.services.queue import lease_release
from labeling.services.rater_flow import (
    assignment_renew,
    assignment_reopen,
    assignments_restore_reopened,
    lease_following_assignment,
    membership_mark_guidelines_seen,
    prompt_completion_refresh,
    rater_progress,
)
from labeling.services.staged_import import default_writers, prompts_import_file_parallel

__all__ = [
    "IMPORT_BATCH_SIZE",
    "LEASE_ATTEMPTS",
    "USERNAME_RULE",
    "assignment_claim_slot",
    "assignment_for_rater",
    "assignment_lock_for_finish",
    "assignment_mark_submitted",
    "assignment_renew",
    "assignment_reopen",
    "assignment_skip",
    "assignment_submitted_statements",
    "assignments_release_for_rater",
    "assignments_restore_reopened",
    "audit_record",
    "default_writers",
    "field_changes",
    "gold_ranking_from_labels",
    "invite_accept",
    "invite_create",
    "invite_usable",
    "lease_following_assignment",
    "lease_new",
    "lease_next_assignment",
    "lease_release",
    "member_update",
    "membership_lock",
    "membership_mark_guidelines_seen",
    "occupied_assignments",
    "project_create",
    "project_update",
    "prompt_completion_refresh",
    "prompt_content_update",
    "prompt_edit_refusal",
    "prompt_for_lead",
    "prompt_has_work",
    "prompt_overlap",
    "prompt_set_gold",
    "prompts_archive",
    "prompts_completion_refresh",
    "prompts_create",
    "prompts_import",
    "prompts_import_file",
    "prompts_import_file_parallel",
    "prompts_reopen",
    "prompts_request_extra_raters",
    "rater_membership",
    "rater_progress",
    "refuse_acting_on_oneself",
    "require_active_rater",
    "user_signup_with_invite",
    "username_validate",
]
