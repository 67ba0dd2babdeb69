"""The pure flag rules in rankings.quality.flags: thresholds, minimum evidence, settings,
reopening."""

from __future__ import annotations

import math

import pytest

from rankings.quality import flags, thresholds
from rankings.quality.decisions import reliability_decision
from rankings.quality.flags import ProjectContext, RaterEvidence, rater_flags
from rankings.quality.thresholds import rules_from_settings
from rankings.stats import registry
from rankings.stats.registry import UNRELIABLE

DEFAULTS = rules_from_settings({})
CAREFUL = RaterEvidence(
    rankings=40,
    agreement=0.82,
    agreement_low=0.78,
    agreement_high=0.86,
    compared_pairs=400,
    gold_accuracy=0.85,
    gold_pairs=36,
    gold_rankings=6,
    self_consistency=0.8,
    repeat_pairs=30,
    repeat_rankings=5,
    first_shown_win_rate=0.52,
    position_p_value=0.6,
    position_pairs=120,
    straight_lining_rate=0.05,
    straight_lining_chance=1 / 24,  # K = 4
    median_seconds=40.0,
    speed_ratio=1.0,
    timed_rankings=40,
    competence=0.86,
    competence_low=0.74,
    competence_high=0.93,
    reliability_evidence=-12.5,
    evidence_per_task=-0.35,
    first_shown_share=0.03,
    longer_share=0.04,
    reliability_labels=230,
    reliability_tasks=40,
)


def codes(rater: RaterEvidence, rules=DEFAULTS, context: ProjectContext | None = None) -> set:
    return {code for code, _ in rater_flags(rater, rules, context)}


def with_(**changes) -> RaterEvidence:
    return CAREFUL.replace(**changes)


def test_a_careful_rater_earns_no_flag():
    assert codes(CAREFUL) == set()
    assert codes(CAREFUL, context=ProjectContext(median_agreement=0.84)) == set()


def test_a_rater_with_no_statistics_earns_no_flag():
    assert rater_flags(RaterEvidence(), DEFAULTS) == []


# LOW_AGREEMENT ------------------------------------------------------------------------------


def test_low_agreement_fires_when_the_upper_bound_is_below_chance():
    rater = with_(agreement=0.4, agreement_low=0.35, agreement_high=0.46, compared_pairs=300)
    ((code, evidence),) = rater_flags(rater, DEFAULTS)
    assert code == registry.LOW_AGREEMENT
    assert evidence["agreement"] == 0.4 and evidence["agreement_high"] == 0.46
    assert evidence["compared_pairs"] == 300 and evidence["threshold"] == 0.5
    assert evidence["threshold_basis"] == "chance level"
    assert "0.40" in evidence["summary"] and "300 compared pairs" in evidence["summary"]


def test_low_agreement_needs_the_whole_interval_below():
    wide = with_(agreement=0.4, agreement_low=0.2, agreement_high=0.62, compared_pairs=40)
    assert registry.LOW_AGREEMENT not in codes(wide)


def test_low_agreement_needs_thirty_compared_pairs():
    few = with_(agreement=0.1, agreement_low=0.02, agreement_high=0.3, compared_pairs=29)
    assert registry.LOW_AGREEMENT not in codes(few)
    assert registry.LOW_AGREEMENT in codes(few.replace(compared_pairs=30))


def test_low_agreement_compares_with_the_median_rater_when_that_is_higher():
    near_chance = with_(agreement=0.5, agreement_low=0.45, agreement_high=0.55)
    assert registry.LOW_AGREEMENT not in codes(near_chance)  # chance level alone: not below
    context = ProjectContext(median_agreement=0.85)
    ((code, evidence),) = rater_flags(near_chance, DEFAULTS, context)
    assert code == registry.LOW_AGREEMENT
    assert evidence["threshold"] == pytest.approx(0.675)  # halfway from 0.5 to 0.85
    assert evidence["threshold_basis"] == "halfway from chance to the median rater's 0.85"
    assert evidence["median_agreement"] == 0.85


def test_the_share_of_the_way_to_the_median_is_a_setting():
    rules = rules_from_settings({"LOW_AGREEMENT": {"share_of_median": 0.25}})
    context = ProjectContext(median_agreement=0.9)
    rater = with_(agreement=0.55, agreement_low=0.5, agreement_high=0.6)
    (finding,) = [
        found
        for found in flags.rater_findings(rater, rules, context)
        if found.code == "LOW_AGREEMENT"
    ]
    assert not finding.fired and finding.evidence["threshold"] == pytest.approx(0.6)
    assert finding.evidence["threshold_basis"].startswith("25% of the way from chance")
    assert registry.LOW_AGREEMENT in codes(rater, DEFAULTS, context)  # halfway: 0.7


def test_a_low_median_never_lowers_the_bar_below_chance():
    rater = with_(agreement=0.42, agreement_low=0.38, agreement_high=0.47)
    context = ProjectContext(median_agreement=0.45)
    assert registry.LOW_AGREEMENT in codes(rater, context=context)


# Gold and repeats ---------------------------------------------------------------------------


def test_gold_failures_fires_below_sixty_percent_with_enough_gold():
    rater = with_(gold_accuracy=0.5, gold_pairs=24, gold_rankings=4)
    ((code, evidence),) = rater_flags(rater, DEFAULTS)
    assert code == registry.GOLD_FAILURES
    assert evidence == {
        "gold_accuracy": 0.5,
        "gold_pairs": 24,
        "gold_rankings": 4,
        "threshold": 0.6,
        "summary": "gold accuracy 0.50 below 0.60 over 24 pairs in 4 rankings",
    }


@pytest.mark.parametrize(
    ("pairs", "rankings"), [(9, 5), (60, 2)], ids=["too-few-pairs", "one-or-two-tasks"]
)
def test_gold_failures_needs_enough_pairs_and_tasks(pairs, rankings):
    rater = with_(gold_accuracy=0.0, gold_pairs=pairs, gold_rankings=rankings)
    assert registry.GOLD_FAILURES not in codes(rater)


def test_self_inconsistent_fires_below_sixty_percent_on_repeats():
    rater = with_(self_consistency=0.45, repeat_pairs=18, repeat_rankings=3)
    ((code, evidence),) = rater_flags(rater, DEFAULTS)
    assert code == registry.SELF_INCONSISTENT
    assert evidence["self_consistency"] == 0.45 and evidence["repeat_pairs"] == 18
    assert evidence["repeat_rankings"] == 3
    assert registry.SELF_INCONSISTENT not in codes(with_(self_consistency=0.6))
    assert registry.SELF_INCONSISTENT not in codes(with_(self_consistency=0.1, repeat_pairs=9))


# Position bias, straight-lining, speed ------------------------------------------------------


def test_position_bias_needs_a_high_rate_and_a_small_p_value():
    biased = with_(first_shown_win_rate=0.9, position_p_value=1e-9, position_pairs=90)
    ((code, evidence),) = rater_flags(biased, DEFAULTS)
    assert code == registry.POSITION_BIAS
    assert evidence["first_shown_win_rate"] == 0.9 and evidence["position_pairs"] == 90
    assert evidence["position_p_value"] == 1e-9
    lucky = with_(first_shown_win_rate=0.9, position_p_value=0.02, position_pairs=90)
    assert registry.POSITION_BIAS not in codes(lucky)
    mild = with_(first_shown_win_rate=0.68, position_p_value=1e-4, position_pairs=900)
    assert registry.POSITION_BIAS not in codes(mild)
    few = with_(first_shown_win_rate=1.0, position_p_value=1e-9, position_pairs=29)
    assert registry.POSITION_BIAS not in codes(few)


def test_straight_lining_bar_is_three_times_chance_or_thirty_percent():
    k4 = {"straight_lining_chance": 1 / math.factorial(4)}  # the rater's own chance rate
    assert registry.STRAIGHT_LINING in codes(with_(straight_lining_rate=0.35, **k4))
    assert registry.STRAIGHT_LINING not in codes(with_(straight_lining_rate=0.3, **k4))
    k3 = {"straight_lining_chance": 1 / 6}  # three times chance, 0.5, beats 0.3
    assert registry.STRAIGHT_LINING not in codes(with_(straight_lining_rate=0.45, **k3))
    ((code, evidence),) = rater_flags(with_(straight_lining_rate=0.6, **k3), DEFAULTS)
    assert code == registry.STRAIGHT_LINING
    assert evidence["threshold"] == 0.5 and evidence["chance_rate"] == pytest.approx(1 / 6, 1e-3)
    assert evidence["in_shown_order"] == 24 and evidence["rankings"] == 40


def test_straight_lining_needs_ten_rankings():
    assert registry.STRAIGHT_LINING not in codes(with_(straight_lining_rate=1.0, rankings=9))


def test_too_fast_fires_below_thirty_percent_of_the_project_pace():
    rater = with_(speed_ratio=0.05, median_seconds=2.0)
    ((code, evidence),) = rater_flags(rater, DEFAULTS)
    assert code == registry.TOO_FAST
    assert evidence["speed_ratio"] == 0.05 and evidence["median_seconds"] == 2.0
    assert evidence["rankings"] == 40
    assert registry.TOO_FAST not in codes(with_(speed_ratio=0.3))
    assert registry.TOO_FAST not in codes(with_(speed_ratio=0.05, timed_rankings=9))


def test_findings_report_rules_with_evidence_that_did_not_fire():
    findings = flags.rater_findings(CAREFUL, DEFAULTS, ProjectContext(median_agreement=0.8))
    assert {finding.code for finding in findings} == set(thresholds.CODES)
    assert not any(finding.fired for finding in findings)
    thin = flags.rater_findings(
        RaterEvidence(rankings=3, timed_rankings=3, speed_ratio=0.1), DEFAULTS
    )
    assert thin == []


# UNRELIABLE: the sequential test ------------------------------------------------------------


def unreliable(**changes) -> RaterEvidence:
    return with_(
        competence=0.38,
        competence_low=0.25,
        competence_high=0.53,
        reliability_evidence=8.0,
        evidence_per_task=0.29,
        first_shown_share=0.05,
        longer_share=0.06,
        reliability_labels=160,
        reliability_tasks=28,
    ).replace(**changes)


def test_unreliable_fires_once_the_odds_reach_one_over_the_false_flag_rate():
    context = ProjectContext(typical_competence=0.86)
    ((code, evidence),) = rater_flags(unreliable(), DEFAULTS, context)
    assert code == UNRELIABLE
    assert list(evidence)[:3] == ["competence", "competence_low", "competence_high"]
    assert evidence["threshold"] == pytest.approx(math.log(100), abs=1e-4)
    assert evidence["reliability_evidence"] == 8.0 and evidence["reliability_tasks"] == 28
    assert evidence["likelihood_ratio"] == "2,981 : 1"
    strong = rater_flags(unreliable(reliability_evidence=90.0), DEFAULTS, context)[0][1]
    assert strong["likelihood_ratio"] == "over 1,000,000 : 1"
    assert evidence["typical_competence"] == 0.86
    assert evidence["careful_competence"] == pytest.approx(0.85 * 0.86, abs=1e-4)
    assert "labels at random on about 51% of pairs" in evidence["summary"]
    assert "2,981 : 1" in evidence["summary"] and "1%" in evidence["summary"]
    # Just short of the bar: not yet.
    assert UNRELIABLE not in codes(unreliable(reliability_evidence=4.6), context=context)
    assert UNRELIABLE in codes(unreliable(reliability_evidence=4.61), context=context)


def test_unreliable_says_which_way_the_rater_errs():
    rater = unreliable(competence=0.25, first_shown_share=0.7, longer_share=0.02)
    ((_, evidence),) = rater_flags(rater, DEFAULTS)
    assert evidence["what_the_test_saw"] == (
        "picks the first-shown response on about 70% of pairs, careful on 25%"
    )
    rater = unreliable(competence=0.3, first_shown_share=0.02, longer_share=0.65)
    assert rater_flags(rater, DEFAULTS)[0][1]["what_the_test_saw"].startswith(
        "picks the longer response on about 65%"
    )


def test_unreliable_never_fires_on_thin_evidence():
    assert UNRELIABLE not in codes(unreliable(reliability_evidence=50.0, reliability_tasks=9))
    assert UNRELIABLE not in codes(unreliable(reliability_evidence=None))


def test_a_stricter_false_flag_rate_needs_stronger_evidence():
    strict = rules_from_settings({"UNRELIABLE": {"max_false_flag_rate": 0.001}})
    assert UNRELIABLE not in codes(unreliable(reliability_evidence=6.0), strict)
    assert UNRELIABLE in codes(unreliable(reliability_evidence=7.0), strict)
    assert rules_from_settings({"UNRELIABLE": {"max_false_flag_rate": 0.9}}).problems == (
        "UNRELIABLE.max_false_flag_rate: must be between 0 and 0.5",
    )


def test_the_decision_says_how_sure_and_how_many_tasks_are_left():
    bar = math.log(100)
    flagged = reliability_decision(unreliable(), DEFAULTS)
    assert (flagged.state, flagged.tasks_needed) == ("flagged", 0)
    careful = reliability_decision(CAREFUL, DEFAULTS)
    assert (careful.state, careful.tasks_needed) == ("careful", 0)
    assert careful.text.startswith("decided: careful")
    leaning_bad = reliability_decision(
        unreliable(reliability_evidence=1.0, evidence_per_task=0.2), DEFAULTS
    )
    assert leaning_bad.state == "undecided"
    assert leaning_bad.tasks_needed == math.ceil((bar - 1.0) / 0.2)
    assert "19 more tasks" in leaning_bad.text
    leaning_good = reliability_decision(
        unreliable(reliability_evidence=-2.0, evidence_per_task=-0.5), DEFAULTS
    )
    assert leaning_good.tasks_needed == math.ceil((bar - 2.0) / 0.5)
    # A new rater is not judged on five tasks, however it looks.
    new = reliability_decision(
        unreliable(reliability_evidence=9.0, evidence_per_task=1.8, reliability_tasks=5), DEFAULTS
    )
    assert (new.state, new.tasks_needed) == ("undecided", 5)
    assert reliability_decision(RaterEvidence(), DEFAULTS).state == "unknown"


def test_project_context_takes_medians_of_raters_with_enough_evidence():
    raters = [
        with_(agreement=value, competence=competence, reliability_labels=labels)
        for value, competence, labels in (
            (0.8, 0.9, 100),
            (0.7, 0.8, 100),
            (0.6, 0.1, 10),  # too few labels to set the typical competence
            (0.5, 0.7, 100),
        )
    ]
    context = flags.project_context(raters, DEFAULTS)
    assert context.median_agreement == pytest.approx(0.65)
    assert context.typical_competence == pytest.approx(0.8)
    assert flags.project_context(raters[:2], DEFAULTS).median_agreement is None


# Project settings ---------------------------------------------------------------------------


def test_project_settings_override_thresholds_per_rule():
    rules = rules_from_settings(
        {"TOO_FAST": {"max_speed_ratio": 0.5, "min_rankings": 20}, "auto_pause": ["TOO_FAST"]}
    )
    assert rules.problems == ()
    assert rules.thresholds["TOO_FAST"] == {"max_speed_ratio": 0.5, "min_rankings": 20.0}
    assert rules.thresholds["GOLD_FAILURES"] == thresholds.DEFAULT_THRESHOLDS["GOLD_FAILURES"]
    assert rules.auto_pause == {"TOO_FAST"}
    assert registry.TOO_FAST in codes(with_(speed_ratio=0.4), rules)
    assert registry.TOO_FAST not in codes(with_(speed_ratio=0.4, timed_rankings=19), rules)


def test_a_rule_can_be_switched_off():
    rules = rules_from_settings({"TOO_FAST": {"enabled": False}})
    assert registry.TOO_FAST not in codes(with_(speed_ratio=0.01), rules)
    assert registry.TOO_FAST in rules_from_settings({"TOO_FAST": {"enabled": True}}).enabled


def test_defaults_are_not_changed_by_overrides():
    rules_from_settings({"TOO_FAST": {"max_speed_ratio": 0.9}})
    assert thresholds.DEFAULT_THRESHOLDS["TOO_FAST"]["max_speed_ratio"] == 0.3


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"TOO_FAST": {"max_speed_ratio": "fast"}}, "TOO_FAST.max_speed_ratio: must be a number"),
        ({"TOO_FAST": {"max_speed_ratio": -1}}, "TOO_FAST.max_speed_ratio: must be a number"),
        ({"TOO_FAST": {"speed": 0.2}}, "TOO_FAST.speed: unknown setting"),
        ({"TOO_FAST": 0.2}, "TOO_FAST: must be an object"),
        ({"TOO_FAST": {"enabled": "no"}}, "TOO_FAST.enabled: must be true or false"),
        ({"SLOW": {}}, "SLOW: unknown setting"),
        ({"auto_pause": ["NAPPING"]}, "auto_pause: unknown flag code 'NAPPING'"),
        ({"reopen_when_worse_by": 2}, "reopen_when_worse_by: must be a number from 0 to 1"),
        ([1, 2], "settings must be an object"),
    ],
)
def test_bad_settings_are_ignored_and_reported(raw, problem):
    rules = rules_from_settings(raw)
    assert any(found.startswith(problem) for found in rules.problems), rules.problems
    assert thresholds.quality_settings_problems(raw) == list(rules.problems)
    assert rules.thresholds["TOO_FAST"]["max_speed_ratio"] == 0.3  # defaults still apply


def test_auto_pause_accepts_a_single_code():
    assert rules_from_settings({"auto_pause": "STRAIGHT_LINING"}).auto_pause == {"STRAIGHT_LINING"}


# Reopening dismissed flags ------------------------------------------------------------------


def test_same_evidence_is_not_clearly_worse():
    before = {"gold_accuracy": 0.5, "gold_pairs": 24}
    assert not flags.clearly_worse("GOLD_FAILURES", before, before, DEFAULTS)
    slightly = {"gold_accuracy": 0.45, "gold_pairs": 36}
    assert not flags.clearly_worse("GOLD_FAILURES", before, slightly, DEFAULTS)


def test_a_number_moved_far_enough_the_bad_way_is_clearly_worse():
    before = {"gold_accuracy": 0.5, "gold_pairs": 24}
    assert flags.clearly_worse("GOLD_FAILURES", before, {**before, "gold_accuracy": 0.4}, DEFAULTS)
    rate = {"first_shown_win_rate": 0.75, "position_pairs": 60}
    worse = {"first_shown_win_rate": 0.86, "position_pairs": 66}
    assert flags.clearly_worse("POSITION_BIAS", rate, worse, DEFAULTS)
    assert not flags.clearly_worse("POSITION_BIAS", worse, rate, DEFAULTS)


def test_doubled_evidence_still_flagged_is_clearly_worse():
    before = {"speed_ratio": 0.2, "rankings": 12}
    assert flags.clearly_worse("TOO_FAST", before, {"speed_ratio": 0.2, "rankings": 24}, DEFAULTS)
    assert not flags.clearly_worse(
        "TOO_FAST", before, {"speed_ratio": 0.2, "rankings": 23}, DEFAULTS
    )


def test_the_reopen_margin_is_a_project_setting():
    strict = rules_from_settings({"reopen_when_worse_by": 0.02})
    before = {"gold_accuracy": 0.5, "gold_pairs": 24}
    after = {"gold_accuracy": 0.47, "gold_pairs": 24}
    assert flags.clearly_worse("GOLD_FAILURES", before, after, strict)
    assert not flags.clearly_worse("GOLD_FAILURES", before, after, DEFAULTS)
