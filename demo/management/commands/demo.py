"""`manage.py demo`: the demo projects, worked on by a simulated crowd, and their logins."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.urls import reverse

from demo import services
from demo.crowd import CROWD
from demo.people import DEMO_PEOPLE
from demo.selectors import ProjectReport, project_report
from labeling.models import Role, TaskKind

KIND_OF = {profile.username: profile.kind for profile in CROWD}


class Command(BaseCommand):
    help = (
        "Build the demo projects (a simulated crowd has ranked them; agreement, flagged raters "
        "and an export are ready), or, if they exist, reset the demo logins' passwords."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--password", default=services.DEMO_PASSWORD)
        parser.add_argument(
            "--base-url", default=settings.SITE_URL, help="Where the site is served, for links."
        )

    def handle(self, *args: Any, password: str, base_url: str, **options: Any) -> None:
        started = time.perf_counter()
        result = services.demo_build(password=password)
        seconds = time.perf_counter() - started
        base_url = base_url.rstrip("/")
        done = (
            f"Built the demo in {seconds:.1f} s."
            if any(result.built)
            else f"The demo was built before; its logins are ready ({seconds:.2f} s)."
        )
        self.stdout.write(self.style.SUCCESS(done))
        for project in result.projects:
            self._project(project_report(project=project), base_url)
        for project in result.other_kinds:
            rate = reverse("rankings:rate", kwargs={"project_id": project.pk})
            kind = TaskKind(project.task_kind).label.lower()
            self.stdout.write(f"\n#{project.pk} {project.name} ({kind}): {base_url}{rate}")
        self.stdout.write(f"\nLogins (password {password}):")
        for person in DEMO_PEOPLE:
            staff = " (staff)" if person.is_staff else ""
            self.stdout.write(f"  {person.username:<9} {Role(person.role).label}{staff}")
        self.stdout.write("Rater invite links:")
        for project, invite in zip(result.projects, result.invites, strict=True):
            path = reverse("labeling:join", kwargs={"code": invite.code})
            self.stdout.write(f"  #{project.pk}: {base_url}{path}")

    def _project(self, report: ProjectReport, base_url: str) -> None:
        write = self.stdout.write
        write(f"\n#{report.project_id} {report.name}")
        write(
            f"  {report.prompts} prompts ({report.gold_prompts} gold), {report.rankings} rankings "
            f"({report.crowd_rankings} by the simulated crowd); {report.open_prompts} prompts "
            "still want a ranking"
        )
        write(f"  {_agreement(report)}")
        for username, codes in report.flagged.items():
            kind = KIND_OF.get(username, "rater")
            write(f"  flagged: {username} ({kind}): {', '.join(codes)}")
        quality = reverse("rankings:quality", kwargs={"project_id": report.project_id})
        write(f"  quality: {base_url}{quality}")
        job = report.export
        if job is not None:
            exports = reverse("exports:project", kwargs={"project_id": report.project_id})
            outcome = f"{job.rows} rows" if job.status == "done" else job.error[:200]
            write(f"  export #{job.pk} ({job.format}, {job.strategy}): {job.status}, {outcome}")
            write(f"  exports: {base_url}{exports}")


def _agreement(report: ProjectReport) -> str:
    metrics = report.agreement
    value = metrics.get("pairwise_agreement")
    if value is None:
        return "no agreement run yet"
    interval = metrics.get("pairwise_agreement_ci") or [None, None]
    ci = f" (95% CI {interval[0]:.2f} to {interval[1]:.2f})" if None not in interval else ""
    extras = [
        f"{label} {metrics[key]:.2f}"
        for key, label in (("kappa", "kappa"), ("alpha_ordinal", "alpha"), ("kendall_w", "W"))
        if metrics.get(key) is not None
    ]
    return (
        f"pairwise agreement {value:.2f}{ci}, {', '.join(extras)}; "
        f"{metrics.get('n_prompts', 0)} prompts, {report.runs} runs"
    )
