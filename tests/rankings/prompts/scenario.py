"""A small project with a prompt in every state the browser filters on (plain helpers,
imported by the browser tests too)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from labeling import services as labeling_services
from labeling.models import AssignmentStatus, Project, Prompt
from rankings.models import AgreementRun, Flag, FlagCode
from tests.factories import AssignmentFactory
from tests.helpers import import_prompts, response_ids
from tests.rankings.quality_helpers import done_run, make_ranking, prompt_row

TEXTS = [
    "How do I bake sourdough bread at home?",
    "Explain recursion to a beginner.",
    "Write a haiku about autumn rain.",
    "What is 100% humidity, really?",
    "Name_with_underscores: what does snake_case mean?",
    "Why did my SOURDOUGH starter die?",
    "Summarise the French revolution.",
    "How do vaccines train the immune system?",
]


@dataclass
class Browse:
    project: Project
    prompts: list[Prompt]
    run: AgreementRun

    def ids(self, *indexes: int) -> list[int]:
        return [self.prompts[index].pk for index in indexes]


def records() -> list[dict]:
    rows = []
    for index, text in enumerate(TEXTS):
        models = ("model-a", "model-b") if index < 4 else ("model-c", "model-b")
        rows.append(
            {
                "external_id": f"q{index}",
                "prompt": text,
                "responses": [
                    {"text": f"Answer {slot} to {index}", "model": model, "metadata": {"t": slot}}
                    for slot, model in enumerate(models)
                ]
                + [{"text": f"Third answer to {index}", "model": "model-z"}],
            }
        )
    return rows


def build_browse(project, lead, rater, rater2) -> Browse:
    """States by index: 0 complete (rater, rater2), 1 in progress (one ranking, one skip),
    2 untouched, 3 gold, 4 skipped twice, 5 reopened after completing, 6 archived,
    7 leased now. rater2 has an open flag. The run gives 0 agreement 0.9, 5 gets 0.3."""
    prompts = import_prompts(project, records())
    p = prompts
    make_ranking(project, p[0], rater)
    make_ranking(project, p[0], rater2, groups=[[response_ids(p[0])[1]], response_ids(p[0])[::2]])
    make_ranking(project, p[1], rater)
    AssignmentFactory(prompt=p[1], rater=rater2, status=AssignmentStatus.SKIPPED, skip_reason="x")
    labeling_services.prompt_set_gold(
        project=project, prompt=p[3], gold_ranking=[[pk] for pk in response_ids(p[3])], by=lead
    )
    for who in (rater, rater2):
        AssignmentFactory(prompt=p[4], rater=who, status=AssignmentStatus.SKIPPED, skip_reason="y")
    make_ranking(project, p[5], rater)
    make_ranking(project, p[5], rater2)
    labeling_services.prompts_archive(project=project, prompt_ids=[p[6].pk], by=lead)
    now = timezone.now()
    AssignmentFactory(
        prompt=p[7],
        rater=rater2,
        status=AssignmentStatus.LEASED,
        finished_at=None,
        leased_at=now,
        expires_at=now + timedelta(minutes=10),
    )
    labeling_services.prompts_completion_refresh(project=project)
    labeling_services.prompts_reopen(project=project, prompt_ids=[p[5].pk], by=lead, reason="low")
    run = done_run(project)
    prompt_row(run, p[0], 0.9, 2)
    prompt_row(run, p[5], 0.3, 2)
    Flag.objects.create(project=project, rater=rater2, code=FlagCode.TOO_FAST)
    for prompt in prompts:
        prompt.refresh_from_db()
    return Browse(project=project, prompts=prompts, run=run)
