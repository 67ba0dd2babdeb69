"""A synthetic crowd ranks a project through the API; the agreement run must flag the bad
raters and leave the careful ones alone. Precision and recall are printed (pytest -s).

Each prompt has a latent true order (one utility per response). Careful raters see the
utilities through noise; random clickers shuffle; always-first clickers mostly click the
cards in the order shown; too-fast raters always do, in about two seconds (the behaviours
of ``tests.rankings.crowd``). Gold prompts carry the true order; repeats come back at the
project's repeat rate. Seeds are fixed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from core.jobs import JobStatus
from labeling import services as labeling_services
from labeling.models import Membership, Project, Prompt, Response, Role
from rankings.models import AgreementRun, Flag, FlagStatus, RaterScore
from tests.rankings import crowd as behaviours
from tests.rankings.agreement_helpers import eager_tasks

pytestmark = pytest.mark.django_db

SEED = 20240611
N_PROMPTS = 52
N_GOLD = 8
K = 4
OVERLAP = 5
GOLD_RATE = 0.25
REPEAT_RATE = 0.15
CROWD = {"careful": 8, "random": 2, "always_first": 2, "too_fast": 2}
BAD_KINDS = {"random", "always_first", "too_fast"}


@dataclass
class SyntheticRater:
    username: str
    kind: str
    client: APIClient
    rng: random.Random

    def rank(self, shown: list[int], utility: dict[int, float]) -> list[list[int]]:
        """Tie groups best first for responses shown in this order."""
        return BEHAVIOURS[self.kind].rank(shown, utility, {}, self.rng)

    def seconds(self) -> float:
        return BEHAVIOURS[self.kind].time(self.rng)


BEHAVIOURS = {
    "careful": behaviours.careful(0.3),
    "random": behaviours.RANDOM_CLICKER,
    "always_first": behaviours.ALWAYS_FIRST,
    "too_fast": behaviours.TOO_FAST,
}


def build_project(lead) -> tuple[Project, dict[int, float]]:
    """Prompts with K responses of similar length, gold prompts ranked by the true order."""
    rng = random.Random(SEED)
    project = labeling_services.project_create(
        creator=lead,
        name="Simulated crowd",
        overlap=OVERLAP,
        allow_ties=True,
        gold_rate=GOLD_RATE,
        repeat_rate=REPEAT_RATE,
        repeat_delay_seconds=0,
        agreement_every_n_rankings=0,
    )
    records = [
        {
            "external_id": f"q{index}",
            "prompt": f"Question {index}: explain something useful.",
            "responses": [
                {"text": f"Answer {slot} to question {index}. " + "Some detail. " * 8}
                for slot in range(K)
            ],
        }
        for index in range(N_PROMPTS + N_GOLD)
    ]
    labeling_services.prompts_import(project=project, raw=json.dumps(records))
    utility: dict[int, float] = {}
    for prompt in Prompt.objects.filter(project=project).order_by("id"):
        for response_id in prompt.responses.order_by("position").values_list("id", flat=True):
            utility[response_id] = rng.gauss(0, 1)
    for prompt in Prompt.objects.filter(project=project).order_by("-id")[:N_GOLD]:
        ids = sorted(prompt.responses.values_list("id", flat=True), key=lambda i: -utility[i])
        prompt.is_gold, prompt.gold_ranking = True, [[response_id] for response_id in ids]
        prompt.save(update_fields=["is_gold", "gold_ranking"])
    return project, utility


def build_crowd(project, api_for: Callable[..., APIClient]) -> list[SyntheticRater]:
    User = get_user_model()
    crowd = []
    for kind, count in CROWD.items():
        for index in range(count):
            user = User.objects.create_user(username=f"{kind}{index}", password="unused-pass")
            Membership.objects.create(project=project, user=user, role=Role.RATER)
            rng = random.Random(f"{SEED}-{kind}-{index}")
            crowd.append(SyntheticRater(user.username, kind, api_for(user), rng))
    return crowd


def rank_until_done(project, crowd: list[SyntheticRater], utility: dict[int, float]) -> int:
    """Raters take turns asking for the next task and ranking it until none is left."""
    active, submitted = list(crowd), 0
    while active:
        for rater in list(active):
            task = rater.client.get(f"/api/projects/{project.pk}/next-task/")
            if task.status_code == 204:
                active.remove(rater)
                continue
            assert task.status_code == 200, task.content
            body = task.json()
            shown = [response["id"] for response in body["responses"]]
            answer = rater.client.post(
                f"/api/assignments/{body['assignment_id']}/ranking/",
                {"ranking": rater.rank(shown, utility), "seconds": rater.seconds()},
                format="json",
            )
            assert answer.status_code == 201, answer.content
            submitted += 1
    return submitted


def test_the_run_flags_the_bad_raters_and_not_the_careful_ones(
    make_user, api_for, django_capture_on_commit_callbacks
):
    lead = make_user("lead")
    project, utility = build_project(lead)
    crowd = build_crowd(project, api_for)
    assert Response.objects.filter(prompt__project=project).count() == (N_PROMPTS + N_GOLD) * K

    submitted = rank_until_done(project, crowd, utility)

    with eager_tasks(), django_capture_on_commit_callbacks(execute=True):
        queued = api_for(lead).post(f"/api/projects/{project.pk}/agreement/")
    assert queued.status_code == 202
    run = AgreementRun.objects.get(project=project)
    assert run.status == JobStatus.DONE, run.error

    kinds = {rater.username: rater.kind for rater in crowd}
    flags: dict[str, list[str]] = {name: [] for name in kinds}
    for flag in Flag.objects.filter(project=project, status=FlagStatus.OPEN).select_related(
        "rater"
    ):
        flags[flag.rater.username].append(flag.code)
    flagged = {name for name, codes in flags.items() if codes}
    bad = {name for name, kind in kinds.items() if kind in BAD_KINDS}
    true_positives = len(flagged & bad)
    precision = true_positives / len(flagged) if flagged else 1.0
    recall = true_positives / len(bad)

    scores = {
        score.rater.username: score
        for score in RaterScore.objects.filter(run=run).select_related("rater")
    }
    print(f"\nSimulated crowd: {submitted} rankings by {len(crowd)} raters, run {run.pk}")
    print(
        f"{'rater':<15}{'agree':>7}{'gold':>7}{'self':>7}{'first':>7}{'line':>7}{'speed':>7}"
        f"{'comp':>7}  flags"
    )
    for name in kinds:
        score = scores[name]
        numbers = [
            score.agreement,
            score.gold_accuracy,
            score.self_consistency,
            score.first_shown_win_rate,
            score.straight_lining_rate,
            score.speed_ratio,
            score.competence,
        ]
        cells = "".join(f"{value:>7.2f}" if value is not None else f"{'-':>7}" for value in numbers)
        print(f"{name:<15}{cells}  {', '.join(sorted(flags[name])) or '-'}")
    print(f"precision {precision:.2f}, recall {recall:.2f} ({true_positives} of {len(bad)} bad)")

    assert precision == 1.0, f"careful raters flagged: {sorted(flagged - bad)}"
    assert recall >= 0.8, f"bad raters missed: {sorted(bad - flagged)}"
    for name, kind in kinds.items():
        if kind == "too_fast":
            assert "TOO_FAST" in flags[name]
        if kind in ("too_fast", "always_first"):
            assert {"STRAIGHT_LINING", "POSITION_BIAS"} & set(flags[name])
