"""What a finished run does (flags, auto-pause, adaptive overlap), the lead's actions on
flags and raters, and the run queued after every N new rankings."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotAllowed, NotFound
from core.jobs import JobStatus
from labeling import services as labeling_services
from labeling.models import Assignment, AssignmentStatus, Membership, MemberStatus, Prompt
from rankings.models import AgreementRun, Flag, FlagStatus
from rankings.quality import actions, findings
from rankings.rating import services as rating_services
from rankings.runs import services
from tests.helpers import sample_records
from tests.rankings.agreement_helpers import noisy_ranking
from tests.rankings.quality_helpers import done_run, prompt_row, score

pytestmark = pytest.mark.django_db

TOO_FAST = {"speed_ratio": 0.05, "median_seconds": 2.0}


@pytest.fixture
def prompts(project) -> list[Prompt]:
    labeling_services.prompts_import(project=project, raw=json.dumps(sample_records(6, 4)))
    return list(Prompt.objects.filter(project=project).order_by("id"))


def open_flags(project, rater=None):
    flags = Flag.objects.filter(project=project, status=FlagStatus.OPEN)
    if rater is not None:
        flags = flags.filter(rater=rater)
    return flags


# Flags from a run ---------------------------------------------------------------------------


def test_a_run_flags_a_rater_with_the_numbers_behind_it(project, rater, rater2):
    run = done_run(project)
    score(run, rater, **TOO_FAST)
    score(run, rater2)

    summary = findings.apply_run_findings(run=run)

    assert summary["flags_opened"] == 1
    flag = Flag.objects.get()
    assert (flag.rater, flag.code, flag.status, flag.run) == (rater, "TOO_FAST", "open", run)
    assert flag.evidence["speed_ratio"] == 0.05 and flag.evidence["median_seconds"] == 2.0
    assert flag.evidence["rankings"] == 40 and flag.evidence["threshold"] == 0.3
    assert flag.evidence["run_id"] == run.pk and flag.evidence["holds"] is True
    assert "0.05 times" in flag.evidence["summary"]


def test_careful_raters_earn_no_flag(project, rater, rater2):
    run = done_run(project)
    score(run, rater)
    score(run, rater2)
    assert findings.apply_run_findings(run=run)["flags_opened"] == 0
    assert not Flag.objects.exists()


def test_a_rater_can_earn_several_flags_one_per_code(project, rater):
    run = done_run(project)
    score(run, rater, straight_lining_rate=0.9, **TOO_FAST)
    findings.apply_run_findings(run=run)
    assert sorted(open_flags(project).values_list("code", flat=True)) == [
        "STRAIGHT_LINING",
        "TOO_FAST",
    ]


def test_applying_a_run_twice_opens_nothing_new(project, rater):
    run = done_run(project)
    score(run, rater, **TOO_FAST)
    findings.apply_run_findings(run=run)

    again = findings.apply_run_findings(run=run)

    assert again["flags_opened"] == 0 and again["flags_updated"] == 1
    assert Flag.objects.count() == 1


def test_the_next_run_refreshes_the_open_flag(project, rater):
    first = done_run(project)
    score(first, rater, **TOO_FAST)
    findings.apply_run_findings(run=first)
    second = done_run(project)
    score(second, rater, speed_ratio=0.1, median_seconds=4.0, rankings=60)

    findings.apply_run_findings(run=second)

    flag = Flag.objects.get()
    assert flag.run == second and flag.evidence["speed_ratio"] == 0.1
    assert flag.evidence["rankings"] == 60 and flag.updated_at >= flag.created_at


def test_an_open_flag_whose_rule_stops_firing_stays_open_marked_cleared(project, rater):
    first = done_run(project)
    score(first, rater, **TOO_FAST)
    findings.apply_run_findings(run=first)
    second = done_run(project)
    score(second, rater, speed_ratio=0.9)

    summary = findings.apply_run_findings(run=second)

    flag = Flag.objects.get()
    assert summary["flags_cleared"] == 1
    assert flag.status == FlagStatus.OPEN  # the lead closes flags, not the job
    assert flag.evidence["holds"] is False and flag.evidence["speed_ratio"] == 0.9


def test_an_older_run_changes_nothing(project, rater):
    older = done_run(project)
    score(older, rater, **TOO_FAST)
    newer = done_run(project)
    score(newer, rater)
    assert findings.apply_run_findings(run=older)["flags_opened"] == 0
    assert not Flag.objects.exists()


def test_a_run_without_scores_does_nothing(project):
    assert findings.apply_run_findings(run=done_run(project)) == {
        "flags_opened": 0,
        "flags_updated": 0,
        "flags_cleared": 0,
        "flags_kept_dismissed": 0,
        "raters_paused": 0,
        "prompts_reopened": 0,
    }


def test_project_thresholds_change_what_is_flagged(project, rater):
    project.quality_settings = {"TOO_FAST": {"max_speed_ratio": 0.6}}
    project.save()
    run = done_run(project)
    score(run, rater, speed_ratio=0.5)
    findings.apply_run_findings(run=run)
    flag = Flag.objects.get()
    assert flag.code == "TOO_FAST" and flag.evidence["threshold"] == 0.6


def test_bad_settings_fall_back_to_the_defaults(project, rater):
    project.quality_settings = {"TOO_FAST": {"max_speed_ratio": "very"}, "auto_pause": ["X"]}
    project.save()
    run = done_run(project)
    score(run, rater, **TOO_FAST)
    findings.apply_run_findings(run=run)
    assert Flag.objects.get().evidence["threshold"] == 0.3


def test_low_agreement_is_judged_against_the_median_rater(project, make_user, add_member):
    crowd = [add_member(make_user(f"careful{index}")) for index in range(4)]
    clicker = add_member(make_user("clicker"))
    run = done_run(project)
    for user in crowd:
        score(run, user, agreement=0.85, agreement_low=0.81, agreement_high=0.88)
    score(run, clicker, agreement=0.5, agreement_low=0.45, agreement_high=0.55)

    findings.apply_run_findings(run=run)

    flag = Flag.objects.get()
    assert flag.rater == clicker and flag.code == "LOW_AGREEMENT"
    assert flag.evidence["median_agreement"] == 0.85
    assert flag.evidence["threshold"] == pytest.approx(0.675)


def test_gold_failures_need_three_gold_rankings(project, rater):
    run = done_run(project)
    score(run, rater, gold_accuracy=0.3, gold_pairs=12, gold_rankings=2)
    findings.apply_run_findings(run=run)
    assert not Flag.objects.exists()  # two gold tasks: not enough, however bad

    run = done_run(project)
    score(run, rater, gold_accuracy=0.3, gold_pairs=18, gold_rankings=3)
    findings.apply_run_findings(run=run)

    flag = Flag.objects.get()
    assert flag.code == "GOLD_FAILURES"
    assert flag.evidence["gold_rankings"] == 3 and flag.evidence["gold_pairs"] == 18


def test_self_inconsistency_counts_repeat_rankings(project, rater):
    run = done_run(project)
    score(run, rater, self_consistency=0.4, repeat_pairs=18, repeat_rankings=3)
    findings.apply_run_findings(run=run)
    flag = Flag.objects.get()
    assert flag.code == "SELF_INCONSISTENT" and flag.evidence["repeat_rankings"] == 3


def test_counts_the_run_stored_with_the_scores_are_used(project, rater):
    run = done_run(project)
    score(
        run,
        rater,
        gold_accuracy=0.3,
        gold_pairs=18,
        straight_lining_rate=0.45,
        speed_ratio=0.1,
        gold_rankings=3,
        repeat_rankings=0,
        straight_lining_chance=1 / 6,  # K = 3: the bar is 0.5
        timed_rankings=9,  # too few timed rankings to call anyone fast
    )
    findings.apply_run_findings(run=run)
    flag = Flag.objects.get()
    assert flag.code == "GOLD_FAILURES" and flag.evidence["gold_rankings"] == 3


def test_straight_lining_is_judged_against_the_raters_own_chance_rate(project, rater):
    run = done_run(project)
    # K = 3 on every task: chance 1/6, the bar is 0.5.
    score(run, rater, straight_lining_rate=0.45, straight_lining_chance=1 / 6)
    findings.apply_run_findings(run=run)
    assert not Flag.objects.exists()


# Dismissed flags ----------------------------------------------------------------------------


def test_a_dismissed_flag_is_not_reopened_by_the_same_evidence(project, rater, lead):
    run = done_run(project)
    score(run, rater, **TOO_FAST)
    findings.apply_run_findings(run=run)
    actions.flag_dismiss(flag=Flag.objects.get(), by=lead, note="new rater, warming up")
    rerun = done_run(project)
    score(rerun, rater, speed_ratio=0.06, rankings=50)

    summary = findings.apply_run_findings(run=rerun)

    assert summary["flags_kept_dismissed"] == 1 and summary["flags_opened"] == 0
    assert list(Flag.objects.values_list("status", flat=True)) == ["dismissed"]


@pytest.mark.parametrize(
    "worse",
    [{"speed_ratio": 0.19, "rankings": 40}, {"speed_ratio": 0.2, "rankings": 80}],
    ids=["number-moved", "evidence-doubled"],
)
def test_a_dismissed_flag_reopens_when_the_evidence_is_clearly_worse(project, rater, lead, worse):
    run = done_run(project)
    score(run, rater, speed_ratio=0.29, median_seconds=9.0)
    findings.apply_run_findings(run=run)
    dismissed = Flag.objects.get()
    actions.flag_dismiss(flag=dismissed, by=lead)
    if worse["rankings"] == 80:
        run = done_run(project)
        score(run, rater, speed_ratio=0.2, median_seconds=6.0)
        findings.apply_run_findings(run=run)  # number moved 0.09: still kept dismissed
        assert not open_flags(project).exists()
    rerun = done_run(project)
    score(rerun, rater, median_seconds=6.0, **worse)

    assert findings.apply_run_findings(run=rerun)["flags_opened"] == 1

    reopened = open_flags(project).get()
    assert reopened.pk != dismissed.pk and reopened.evidence["speed_ratio"] == worse["speed_ratio"]
    dismissed.refresh_from_db()
    assert dismissed.status == FlagStatus.DISMISSED  # kept as history


# Auto-pause ---------------------------------------------------------------------------------


def test_auto_pause_pauses_the_rater_and_releases_their_leases(project, rater, prompts):
    project.quality_settings = {"auto_pause": ["STRAIGHT_LINING"]}
    project.save()
    lease = labeling_services.lease_next_assignment(project=project, rater=rater)
    run = done_run(project)
    score(run, rater, straight_lining_rate=0.8, **TOO_FAST)

    summary = findings.apply_run_findings(run=run)

    assert summary["raters_paused"] == 1
    membership = Membership.objects.get(project=project, user=rater)
    assert membership.status == MemberStatus.PAUSED
    statuses = dict(Flag.objects.values_list("code", "status"))
    assert statuses == {"STRAIGHT_LINING": "rater_paused", "TOO_FAST": "rater_paused"}
    assert "Paused automatically by agreement run" in Flag.objects.first().note
    lease.refresh_from_db()
    assert lease.expires_at <= timezone.now()
    with pytest.raises(NotAllowed):
        labeling_services.lease_next_assignment(project=project, rater=rater)


def test_auto_pause_only_for_the_listed_rules(project, rater):
    project.quality_settings = {"auto_pause": ["STRAIGHT_LINING"]}
    project.save()
    run = done_run(project)
    score(run, rater, **TOO_FAST)
    assert findings.apply_run_findings(run=run)["raters_paused"] == 0
    assert Membership.objects.get(project=project, user=rater).status == MemberStatus.ACTIVE


def test_auto_pause_leaves_a_dismissed_flag_alone(project, rater, lead):
    run = done_run(project)
    score(run, rater, **TOO_FAST)
    findings.apply_run_findings(run=run)
    actions.flag_dismiss(flag=Flag.objects.get(), by=lead)
    project.quality_settings = {"auto_pause": ["TOO_FAST"]}
    project.save()
    rerun = done_run(project)
    score(rerun, rater, **TOO_FAST)
    assert findings.apply_run_findings(run=rerun)["raters_paused"] == 0


# Adaptive overlap ---------------------------------------------------------------------------


@pytest.fixture
def adaptive(project, prompts):
    project.overlap, project.max_overlap, project.adaptive_agreement_threshold = 2, 4, 0.6
    project.save()
    return project


def test_a_low_agreement_prompt_gets_an_extra_rater_with_the_reason(adaptive, prompts):
    low, fine = prompts[:2]
    run = done_run(adaptive)
    prompt_row(run, low, agreement=0.33, n_rankings=2)
    prompt_row(run, fine, agreement=0.9, n_rankings=2)

    summary = findings.apply_run_findings(run=run)

    assert summary["prompts_reopened"] == 1
    low.refresh_from_db()
    assert low.extra_raters == 1 and not low.is_complete
    assert low.extra_reason == f"agreement 0.33 below 0.60 after 2 rankings (run {run.pk})"
    fine.refresh_from_db()
    assert fine.extra_raters == 0


def test_a_prompt_waiting_for_its_extra_rater_is_not_asked_for_another(adaptive, prompts):
    low = prompts[0]
    first = done_run(adaptive)
    prompt_row(first, low, agreement=0.33, n_rankings=2)
    findings.apply_run_findings(run=first)
    second = done_run(adaptive)
    prompt_row(second, low, agreement=0.33, n_rankings=2)  # the extra ranking is not in yet

    assert findings.apply_run_findings(run=second)["prompts_reopened"] == 0
    third = done_run(adaptive)
    prompt_row(third, low, agreement=0.4, n_rankings=3)
    assert findings.apply_run_findings(run=third)["prompts_reopened"] == 1
    low.refresh_from_db()
    assert low.extra_raters == 2 and "agreement 0.40" in low.extra_reason


def test_extra_raters_stop_at_max_overlap(adaptive, prompts):
    low = prompts[0]
    Prompt.objects.filter(pk=low.pk).update(extra_raters=2)  # overlap 2 + 2 = max 4
    run = done_run(adaptive)
    prompt_row(run, low, agreement=0.1, n_rankings=4)
    assert findings.apply_run_findings(run=run)["prompts_reopened"] == 0


def test_prompts_with_too_few_rankings_or_gold_are_left_alone(adaptive, prompts):
    short, gold = prompts[:2]
    Prompt.objects.filter(pk=gold.pk).update(is_gold=True, gold_ranking=[[1]])
    run = done_run(adaptive)
    prompt_row(run, short, agreement=0.0, n_rankings=1)
    prompt_row(run, gold, agreement=0.0, n_rankings=5)
    assert findings.apply_run_findings(run=run)["prompts_reopened"] == 0


def test_adaptive_overlap_is_off_without_a_threshold(project, prompts):
    project.max_overlap = 5
    project.save()
    run = done_run(project)
    prompt_row(run, prompts[0], agreement=0.0, n_rankings=3)
    assert findings.apply_run_findings(run=run)["prompts_reopened"] == 0


# The lead's actions -------------------------------------------------------------------------


@pytest.fixture
def flag(project, rater):
    run = done_run(project)
    score(run, rater, straight_lining_rate=0.9, **TOO_FAST)
    findings.apply_run_findings(run=run)
    return Flag.objects.get(code="TOO_FAST")


def test_dismiss_keeps_the_note_and_who_dismissed(flag, lead):
    actions.flag_dismiss(flag=flag, by=lead, note="  known fast reader  ")
    flag.refresh_from_db()
    assert (flag.status, flag.resolved_by, flag.note) == ("dismissed", lead, "known fast reader")


def test_dismissing_twice_is_harmless(flag, lead):
    actions.flag_dismiss(flag=flag, by=lead, note="first")
    again = actions.flag_dismiss(flag=flag, by=lead, note="second")
    assert again.status == "dismissed" and again.note == "first"


def test_a_too_long_note_is_refused(flag, lead):
    with pytest.raises(InvalidInput) as error:
        actions.flag_dismiss(flag=flag, by=lead, note="x" * 501)
    assert error.value.field == "note"


def test_pause_rater_pauses_them_and_closes_all_their_open_flags(flag, lead, project, rater):
    actions.flag_pause_rater(flag=flag, by=lead, note="clicking through")
    assert Membership.objects.get(project=project, user=rater).status == MemberStatus.PAUSED
    assert set(Flag.objects.values_list("status", "resolved_by", "note")) == {
        ("rater_paused", lead.pk, "clicking through")
    }


def test_a_paused_raters_flag_cannot_be_dismissed(flag, lead):
    actions.flag_pause_rater(flag=flag, by=lead)
    with pytest.raises(Conflict):
        actions.flag_dismiss(flag=flag, by=lead)


def test_a_dismissed_flag_can_still_lead_to_a_pause(flag, lead, project, rater):
    actions.flag_dismiss(flag=flag, by=lead)
    paused = actions.flag_pause_rater(flag=flag, by=lead, note="changed my mind")
    assert paused.status == "rater_paused" and paused.note == "changed my mind"


def test_exclude_from_a_flag_excludes_pauses_and_queues_a_run(
    flag, lead, project, rater, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        actions.flag_exclude_rater(flag=flag, by=lead)
    membership = Membership.objects.get(project=project, user=rater)
    assert membership.excluded and membership.status == MemberStatus.PAUSED
    flag.refresh_from_db()
    assert flag.status == "rater_paused" and flag.note == "Rankings excluded."
    run = AgreementRun.objects.get(trigger=actions.EXCLUSION_TRIGGER)
    assert run.status == JobStatus.QUEUED and len(callbacks) == 1


def test_including_again_queues_a_run_and_unchanged_queues_none(project, rater):
    actions.rater_set_excluded(project=project, username=rater.username, excluded=False)
    assert not AgreementRun.objects.exists()  # nothing changed
    actions.rater_set_excluded(project=project, username=rater.username, excluded=True)
    AgreementRun.objects.update(status=JobStatus.DONE)
    actions.rater_set_excluded(project=project, username=rater.username, excluded=False)
    assert AgreementRun.objects.filter(trigger=actions.EXCLUSION_TRIGGER).count() == 2
    assert not Membership.objects.get(project=project, user=rater).excluded


def test_pause_and_resume_from_the_rater_table(project, rater, lead):
    actions.rater_pause(project=project, username=rater.username, by=lead)
    assert Membership.objects.get(project=project, user=rater).status == MemberStatus.PAUSED
    actions.rater_resume(project=project, username=rater.username)
    assert Membership.objects.get(project=project, user=rater).status == MemberStatus.ACTIVE


def test_acting_on_a_non_member_is_not_found(project, lead, outsider):
    with pytest.raises(NotFound):
        actions.rater_pause(project=project, username=outsider.username, by=lead)


def test_only_leads_may_act_on_flags(flag, lead, engineer, rater, outsider, make_user):
    assert actions.flag_for_user(user=lead, flag_id=flag.pk) == flag
    assert actions.flag_for_user(user=make_user("staff", is_staff=True), flag_id=flag.pk) == flag
    assert actions.flag_for_user(user=engineer, flag_id=flag.pk, lead_only=False) == flag
    with pytest.raises(NotAllowed):
        actions.flag_for_user(user=engineer, flag_id=flag.pk)
    with pytest.raises(NotAllowed):
        actions.flag_for_user(user=rater, flag_id=flag.pk)
    with pytest.raises(NotFound):
        actions.flag_for_user(user=outsider, flag_id=flag.pk)
    with pytest.raises(NotFound):
        actions.flag_for_user(user=lead, flag_id=flag.pk + 1000)


# A run after every N new rankings -----------------------------------------------------------


def submit_one(project, rater, rng, capture=None):
    """Lease and submit one task; with ``capture``, its on-commit work runs as on a commit."""
    assignment = labeling_services.lease_next_assignment(project=project, rater=rater)
    assert assignment is not None
    groups = noisy_ranking(assignment, rng)
    if capture is None:
        rating_services.ranking_submit(assignment_id=assignment.pk, rater=rater, ranking=groups)
        return
    with capture(execute=True):
        rating_services.ranking_submit(assignment_id=assignment.pk, rater=rater, ranking=groups)


@pytest.fixture
def every_three(project, prompts):
    project.agreement_every_n_rankings = 3
    project.save()
    return project


def test_a_run_is_queued_after_every_n_new_rankings(
    every_three, rater, rater2, django_capture_on_commit_callbacks
):
    rng = random.Random(1)
    submit_one(every_three, rater, rng, django_capture_on_commit_callbacks)
    submit_one(every_three, rater2, rng, django_capture_on_commit_callbacks)
    assert not AgreementRun.objects.exists()

    submit_one(every_three, rater, rng, django_capture_on_commit_callbacks)

    run = AgreementRun.objects.get()
    assert run.trigger == "rankings" and run.status == JobStatus.DONE  # eager in tests
    assert run.n_rankings == 3


def test_only_rankings_since_the_last_run_count(
    every_three, rater, rater2, django_capture_on_commit_callbacks
):
    rng = random.Random(2)
    for user in (rater, rater2, rater, rater2, rater):
        submit_one(every_three, user, rng, django_capture_on_commit_callbacks)
    assert AgreementRun.objects.count() == 1  # at the third; two new since
    submit_one(every_three, rater2, rng, django_capture_on_commit_callbacks)
    assert AgreementRun.objects.count() == 2
    assert AgreementRun.objects.order_by("id").last().n_rankings == 6


def test_no_run_is_queued_while_one_is_waiting(every_three, rater, rater2):
    waiting = AgreementRun.objects.create(project=every_three)
    rng = random.Random(3)
    for user in (rater, rater2, rater):
        submit_one(every_three, user, rng)
    assert services.agreement_run_request_if_due(project=every_three) is None
    assert list(AgreementRun.objects.all()) == [waiting]


def test_a_waiting_run_given_up_as_abandoned_does_not_block(every_three, rater, rater2):
    long_ago = timezone.now() - timedelta(days=2)
    AgreementRun.objects.create(project=every_three, created_at=long_ago)
    rng = random.Random(4)
    for user in (rater, rater2, rater):
        submit_one(every_three, user, rng)
    assert services.agreement_run_request_if_due(project=every_three) is not None


def test_zero_turns_the_trigger_off(every_three, rater, rater2):
    every_three.agreement_every_n_rankings = 0
    rng = random.Random(5)
    for user in (rater, rater2, rater):
        submit_one(every_three, user, rng)
    assert services.agreement_run_request_if_due(project=every_three) is None
    assert not AgreementRun.objects.exists()


def test_the_check_is_a_few_cheap_queries(
    every_three, rater, rater2, django_assert_max_num_queries
):
    rng = random.Random(6)
    submit_one(every_three, rater, rng)
    # Live run? Last finished run's ranking id? New rankings, counted up to N.
    with django_assert_max_num_queries(3):
        assert services.agreement_run_request_if_due(project=every_three) is None


def test_submits_register_the_check_once_per_new_ranking(
    every_three, rater, django_capture_on_commit_callbacks
):
    assignment = labeling_services.lease_next_assignment(project=every_three, rater=rater)
    assert assignment is not None
    groups = noisy_ranking(assignment, random.Random(7))
    with django_capture_on_commit_callbacks() as callbacks:
        rating_services.ranking_submit(assignment_id=assignment.pk, rater=rater, ranking=groups)
    assert len(callbacks) == 1
    with django_capture_on_commit_callbacks() as callbacks:
        rating_services.ranking_submit(assignment_id=assignment.pk, rater=rater, ranking=groups)
    assert callbacks == []  # a retried submit stores nothing new
    assert Assignment.objects.get(pk=assignment.pk).status == AssignmentStatus.SUBMITTED
