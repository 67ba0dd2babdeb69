"""Judge calibration against humans, checked against a brute-force reference on random data."""

from __future__ import annotations

import json
import random
from itertools import combinations
from statistics import median

import numpy as np
import pytest

from labeling import services as labeling_services
from labeling.models import Membership, Prompt
from llm.calibration import PromptRankings, calibrate
from llm.models import CallStatus, JudgeVerdict
from rankings.models import Ranking
from tests.helpers import sample_records
from tests.llm.helpers import make_endpoint
from tests.rankings.agreement_helpers import rank_in_turns

pytestmark = pytest.mark.django_db


def labels_of(groups, ids):
    where = {item: level for level, group in enumerate(groups) for item in group}
    return {(a, b): int(np.sign(where[b] - where[a])) for a, b in combinations(sorted(ids), 2)}


def reference_kappa(x, y):
    """Scott-style kappa from a 3x3 table with the ± categories pooled symmetrically."""
    table = np.zeros((3, 3))
    for a, b in zip(x, y, strict=True):
        table[a + 1, b + 1] += 1
    n = table.sum()
    observed = np.trace(table) / n
    tie_share = (table[1, :].sum() + table[:, 1].sum()) / (2 * n)
    marginal = np.array([(1 - tie_share) / 2, tie_share, (1 - tie_share) / 2])
    chance = float((marginal**2).sum())
    return (observed - chance) / (1 - chance)


def random_groups(ids, rng):
    shuffled = ids[:]
    rng.shuffle(shuffled)
    groups, index = [], 0
    while index < len(shuffled):
        size = 2 if rng.random() < 0.25 and index + 1 < len(shuffled) else 1
        groups.append(sorted(shuffled[index : index + size]))
        index += size
    return groups


@pytest.fixture
def crowd_and_judge(project, make_user, add_member, lead, fake_llm):
    labeling_services.project_update(project=project, overlap=4, gold_rate=0.0)
    labeling_services.prompts_import(
        project=project, raw=json.dumps(sample_records(14, responses=4))
    )
    crowd = [add_member(make_user(f"crowd{index}")) for index in range(4)]
    rank_in_turns(project, crowd, seed=11)
    Membership.objects.filter(project=project, user=crowd[3]).update(excluded=True)
    endpoint = make_endpoint(project, fake_llm.base_url, name="judge")
    rng = random.Random(5)
    prompts = list(Prompt.objects.filter(project=project).order_by("pk"))
    for prompt in prompts[:12]:  # two prompts stay unjudged
        ids = list(prompt.responses.order_by("position").values_list("pk", flat=True))
        # A judge that mostly copies one rater, so agreement is far from chance.
        copied = Ranking.objects.filter(prompt=prompt, rater=crowd[0]).first()
        groups = copied.groups if copied and rng.random() < 0.7 else random_groups(ids, rng)
        JudgeVerdict.objects.create(
            endpoint=endpoint, prompt=prompt, status=CallStatus.DONE, groups=groups,
            pairs=6, flipped_pairs=rng.choice([0, 0, 1]), consistent=True,
        )  # fmt: skip
    gold_prompt = prompts[0]
    gold_ids = list(gold_prompt.responses.order_by("position").values_list("pk", flat=True))
    labeling_services.prompt_set_gold(
        project=project,
        prompt=gold_prompt,
        gold_ranking=[[gold_ids[1]], [gold_ids[0], gold_ids[2]], [gold_ids[3]]],
    )
    return endpoint, crowd, prompts[:12]


def reference(project, endpoint, crowd, judged):
    humans = crowd[:3]  # the fourth is excluded
    judge_labels, human_labels, gold_labels = {}, {}, {}
    for prompt in judged:
        ids = list(prompt.responses.values_list("pk", flat=True))
        verdict = JudgeVerdict.objects.get(prompt=prompt, endpoint=endpoint)
        for pair, label in labels_of(verdict.groups, ids).items():
            judge_labels[(prompt.pk, *pair)] = label
        for ranking in Ranking.objects.filter(prompt=prompt, rater__in=humans, is_repeat=False):
            for pair, label in labels_of(ranking.groups, ids).items():
                human_labels[(ranking.rater_id, prompt.pk, *pair)] = label
        prompt.refresh_from_db()
        if prompt.is_gold:
            for pair, label in labels_of(prompt.gold_ranking, ids).items():
                gold_labels[(prompt.pk, *pair)] = label
    consensus_j, consensus_h = [], []
    for unit, label in judge_labels.items():
        votes = [v for (r, *rest), v in human_labels.items() if tuple(rest) == unit]
        counts = sorted(((votes.count(c), c) for c in set(votes)), reverse=True)
        if counts and (len(counts) == 1 or counts[0][0] > counts[1][0]):
            consensus_j.append(label)
            consensus_h.append(counts[0][1])
    per_rater = {}
    for rater in humans:
        x = [
            judge_labels[unit]
            for (r, *unit_list), _ in human_labels.items()
            if r == rater.pk
            for unit in [tuple(unit_list)]
        ]
        y = [v for (r, *_), v in human_labels.items() if r == rater.pk]
        per_rater[rater.pk] = (np.mean(np.equal(x, y)), reference_kappa(x, y), len(x))
    loo = []
    for rater in humans:
        agree = total = 0
        for (r, *rest), v in human_labels.items():
            if r != rater.pk:
                continue
            for other in humans:
                if other.pk != rater.pk and (other.pk, *rest) in human_labels:
                    agree += human_labels[(other.pk, *rest)] == v
                    total += 1
        loo.append(agree / total)
    pooled = [judge_labels[tuple(unit)] == v for (r, *unit), v in human_labels.items()]
    gold = [judge_labels[unit] == v for unit, v in gold_labels.items()]
    consensus = (
        np.mean(np.equal(consensus_j, consensus_h)),
        reference_kappa(consensus_j, consensus_h),
        len(consensus_j),
    )
    return {
        "consensus": consensus,
        "per_rater": per_rater,
        "median_loo": median(loo),
        "pooled": (np.mean(pooled), len(pooled)),
        "gold": (np.mean(gold), len(gold)),
    }  # fmt: skip


def test_calibration_matches_a_brute_force_reference(api_for, lead, project, crowd_and_judge):
    endpoint, crowd, judged = crowd_and_judge
    expected = reference(project, endpoint, crowd, judged)
    response = api_for(lead).get(
        f"/api/projects/{project.pk}/judge-calibration/?endpoint={endpoint.pk}"
    )
    assert response.status_code == 200, response.content
    got = response.json()
    assert got["prompts_judged"] == 12 and got["humans"] == 3
    agreement, kappa, n = expected["consensus"]
    assert got["consensus"]["agreement"] == pytest.approx(agreement)
    assert got["consensus"]["kappa"] == pytest.approx(kappa)
    assert got["consensus"]["compared"] == n
    for row in got["per_rater"]:
        agreement, kappa, n = expected["per_rater"][row["rater_id"]]
        assert row["agreement"] == pytest.approx(agreement)
        assert row["kappa"] == pytest.approx(kappa)
        assert row["compared"] == n
    assert got["human_leave_one_out"]["median"] == pytest.approx(expected["median_loo"])
    assert got["humans_pooled"]["agreement"] == pytest.approx(expected["pooled"][0])
    assert got["humans_pooled"]["compared"] == expected["pooled"][1]
    assert got["judge_minus_median_human"] == pytest.approx(
        expected["pooled"][0] - expected["median_loo"]
    )
    assert got["gold"]["agreement"] == pytest.approx(expected["gold"][0])
    assert got["gold"]["compared"] == expected["gold"][1] == 6
    low, high = got["humans_pooled"]["interval"]
    assert low <= got["humans_pooled"]["agreement"] <= high and low < high
    worst = got["most_disagreeing"]
    values = [row["agreement_with_humans"] for row in worst]
    assert values == sorted(values) and len(worst) == 10
    assert worst[0]["responses"] and "prompt" in worst[0]
    assert got["position"]["pairs"] == 72


def test_the_bootstrap_interval_covers_a_resampling_reference():
    rng = np.random.default_rng(3)
    units = []
    for prompt_id in range(30):
        ids = [prompt_id * 10 + k for k in range(3)]
        humans = {r: [[i] for i in rng.permutation(ids).tolist()] for r in range(3)}
        units.append(PromptRankings(prompt_id, ids, judge=humans[0], humans=humans))
    result = calibrate(units, resamples=2000, seed=1)
    # Reference: resample prompts and recompute the pooled agreement from scratch.
    draws = []
    for _ in range(400):
        picked = [units[i] for i in rng.integers(0, 30, 30)]
        draws.append(calibrate(picked, resamples=0)["humans_pooled"]["agreement"])
    low, high = result["humans_pooled"]["interval"]
    ref_low, ref_high = np.quantile(draws, [0.025, 0.975])
    assert abs(low - ref_low) < 0.05 and abs(high - ref_high) < 0.05


def test_a_judge_that_copies_the_consensus_beats_the_median_rater():
    rng = random.Random(0)
    units = []
    for prompt_id in range(20):
        ids = [prompt_id * 10 + k for k in range(4)]
        truth = [[i] for i in ids]
        humans = {}
        for rater in range(5):
            order = [group[0] for group in truth]
            a, b = rng.sample(range(4), 2)  # every rater swaps one pair: noise
            order[a], order[b] = order[b], order[a]
            humans[rater] = [[i] for i in order]
        units.append(PromptRankings(prompt_id, ids, judge=truth, humans=humans))
    result = calibrate(units)
    assert result["better_than_median_rater"] is True
    assert result["consensus"]["agreement"] > result["human_leave_one_out"]["median"]
