"""What other apps (and the rater part of this one) call to get agreement runs: a run now,
or one when enough new rankings arrived. The runs themselves live in ``rankings.runs``."""

from __future__ import annotations

from rankings.runs.services import (
    agreement_run_compute,
    agreement_run_request,
    agreement_run_request_if_due,
)

__all__ = ["agreement_run_compute", "agreement_run_request", "agreement_run_request_if_due"]
