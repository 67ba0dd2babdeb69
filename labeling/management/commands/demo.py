"""`manage.py demo`: a demo project with realistic prompts, its people, and their logins."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from labeling import services
from labeling.models import Membership, Project, Role

DEMO_FILE = Path(__file__).resolve().parents[2] / "demo" / "prompts.json"
DEMO_PROJECT = "Demo: assistant helpfulness"
DEMO_PASSWORD = "ranklab-demo"
DEMO_PEOPLE = [
    ("lead", Role.LEAD),
    ("rater1", Role.RATER),
    ("rater2", Role.RATER),
    ("rater3", Role.RATER),
    ("engineer", Role.ENGINEER),
]
GUIDELINES = """Rank the responses from best to worst for a helpful, honest and harmless assistant.

- Prefer responses that answer the question correctly and completely.
- Penalize unsafe advice and confident mistakes more than terse answers.
- Use a tie only when you truly cannot prefer one response over another.
"""


class Command(BaseCommand):
    help = "Create (or reset the passwords of) the demo project, its users and prompts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--password", default=DEMO_PASSWORD)

    @transaction.atomic
    def handle(self, *args, password: str, **options) -> None:
        User = get_user_model()
        users = {}
        for username, _ in DEMO_PEOPLE:
            user, _ = User.objects.get_or_create(username=username)
            user.set_password(password)
            user.is_staff = username == "lead"
            user.save()
            users[username] = user
        project = Project.objects.filter(name=DEMO_PROJECT).first()
        if project is None:
            project = services.project_create(
                creator=users["lead"], name=DEMO_PROJECT, overlap=3, guidelines=GUIDELINES
            )
            services.prompts_import(project=project, raw=DEMO_FILE.read_bytes())
        for username, role in DEMO_PEOPLE:
            Membership.objects.get_or_create(
                project=project, user=users[username], defaults={"role": role}
            )
        invite = services.invite_create(project=project, created_by=users["lead"])
        self.stdout.write(self.style.SUCCESS(f"Demo project #{project.pk}: {project.name}"))
        self.stdout.write(f"  {project.prompts.count()} prompts, overlap {project.overlap}")
        self.stdout.write("Logins (username / password):")
        for username, role in DEMO_PEOPLE:
            self.stdout.write(f"  {username:<9} / {password}   ({role.label})")
        self.stdout.write(f"Rater invite link: /join/{invite.code}/")
