"""Two leads acting on one rater at once (pause from a flag, exclude from the same or
another flag) queue behind each other instead of deadlocking: every action takes its locks
in one order — project, membership, flag (issue 13: 4 of 15 such pairs deadlocked)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from labeling import services as labeling_services
from labeling.models import AuditEvent, Membership, Role
from rankings.models import Flag, FlagStatus
from rankings.quality import actions

ROUNDS = 15


def act_together(*calls) -> list[BaseException]:
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call) -> None:
        try:
            barrier.wait()
            call()
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


@pytest.mark.postgresql("row locks taken by two connections at once")
@pytest.mark.django_db(transaction=True)
def test_pause_and_exclude_on_one_rater_at_once_never_deadlock(make_user):
    lead = make_user("lead-locks")
    project = labeling_services.project_create(creator=lead, name="Locks", overlap=2)
    for round_number in range(ROUNDS):
        rater = make_user(f"locked{round_number}")
        Membership.objects.create(project=project, user=rater, role=Role.RATER)
        first = Flag.objects.create(project=project, rater=rater, code="TOO_FAST", evidence={})
        # Odd rounds: the two actions come from two different flags of the same rater.
        second = (
            Flag.objects.create(project=project, rater=rater, code="POSITION_BIAS", evidence={})
            if round_number % 2
            else first
        )
        errors = act_together(
            lambda flag=first: actions.flag_pause_rater(flag=flag, by=lead, note="pause"),
            lambda flag=second: actions.flag_exclude_rater(flag=flag, by=lead, note="exclude"),
        )
        assert errors == [], f"round {round_number}: {errors!r}"
        membership = Membership.objects.get(project=project, user=rater)
        assert (membership.status, membership.excluded) == ("paused", True)
        statuses = set(Flag.objects.filter(rater=rater).values_list("status", flat=True))
        assert statuses == {FlagStatus.RATER_PAUSED}
    excluded = AuditEvent.objects.filter(project=project, action="flag.exclude_rater")
    assert excluded.count() == ROUNDS
