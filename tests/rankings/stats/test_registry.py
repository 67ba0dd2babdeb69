"""The rater statistics registry: consistent with itself, with storage and with the flag
rules; and its values, median seconds first, against brute force on random data."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from django.db import models

from rankings.models import RaterScore
from rankings.quality.thresholds import CODES
from rankings.stats.agreement import rater_leave_one_out_agreement
from rankings.stats.raters import rater_quality
from rankings.stats.registry import (
    RATER_STATISTICS,
    STATISTICS,
    RaterResult,
    evidence_statistics,
    headline,
    rater_values,
)
from rankings.stats.tables import one_ranking_per_rater
from tests.rankings.stats.test_rater_statistics import N_RATERS, arrays, random_crowd

NOT_STATISTICS = {"id", "run", "rater"}


def test_every_statistic_has_its_column_and_every_column_its_statistic():
    columns = {
        field.name: field
        for field in RaterScore._meta.get_fields()
        if isinstance(field, models.Field) and field.name not in NOT_STATISTICS
    }
    assert {stat.column for stat in RATER_STATISTICS} == set(columns)
    for stat in RATER_STATISTICS:
        field = columns[stat.column]
        if stat.is_count:
            assert isinstance(field, models.PositiveIntegerField) and field.default == 0
        else:
            assert isinstance(field, models.FloatField) and field.null, stat.name


def test_names_are_unique_and_references_resolve():
    assert len(STATISTICS) == len(RATER_STATISTICS)
    sorts = [stat.dashboard.sort for stat in RATER_STATISTICS if stat.dashboard]
    sorts = [sort for sort in sorts if sort is not None]
    assert len(sorts) == len(set(sorts))
    for stat in RATER_STATISTICS:
        if stat.dashboard is not None:
            for names in stat.dashboard.details:
                assert all(name in STATISTICS for name in names), stat.name
        assert set(stat.evidence_for) <= set(CODES), stat.name


def test_every_flag_rule_is_judged_on_one_statistic_with_a_direction():
    for code in CODES:
        judged_on = headline(code)
        assert judged_on.higher_is_better is not None
        assert evidence_statistics(code)[0] is judged_on
    assert {stat.flag for stat in RATER_STATISTICS if stat.flag} == set(CODES)


def brute_force_medians(crowd) -> dict[int, float | None]:
    """Per rater: the median seconds of their counted (not repeat) rankings with seconds."""
    medians: dict[int, float | None] = {}
    for rater in range(N_RATERS):
        seconds = [
            record.seconds
            for record in crowd.records
            if record.rater == rater and not record.repeat and record.seconds is not None
        ]
        medians[rater] = statistics.median(seconds) if seconds else None
    return medians


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_median_seconds_is_the_median_of_each_raters_timed_rankings(seed: int) -> None:
    crowd = random_crowd(seed)
    table, context = arrays(crowd)
    counted = one_ranking_per_rater(table.take(~context.is_repeat))
    together = rater_leave_one_out_agreement(counted)
    without_ties = rater_leave_one_out_agreement(counted, include_ties=False)
    quality = rater_quality(table, context)

    expected = brute_force_medians(crowd)
    for rater in range(N_RATERS):
        result = RaterResult(together[rater], without_ties[rater], quality[rater], 1.0)
        value = STATISTICS["median_seconds"].value_of(result)
        if expected[rater] is None:
            assert value is None
        else:
            assert value == pytest.approx(expected[rater], abs=1e-12)
        assert rater_values(result)["median_seconds"] == value


def test_values_are_stored_as_whole_counts_and_finite_floats_or_none():
    crowd = random_crowd(7)
    table, context = arrays(crowd)
    counted = one_ranking_per_rater(table.take(~context.is_repeat))
    together = rater_leave_one_out_agreement(counted)
    quality = rater_quality(table, context)
    for rater in range(N_RATERS):
        values = rater_values(RaterResult(together[rater], together[rater], quality[rater], 0.5))
        for stat in RATER_STATISTICS:
            value = values[stat.name]
            if stat.is_count:
                assert type(value) is int and value >= 0, stat.name
            else:
                assert value is None or (type(value) is float and np.isfinite(value)), stat.name
