"""`manage.py import_prompts PROJECT FILE`: the API's import, from a JSON or JSONL file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import RanklabError
from labeling import services
from labeling.models import Project


class Command(BaseCommand):
    help = "Import prompts and responses from a JSON list or JSON Lines file (all or nothing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", type=int, help="Project id")
        parser.add_argument("file", type=Path, help="Path to a .json or .jsonl file")

    def handle(self, *args: Any, project: int, file: Path, **options: Any) -> None:
        target = Project.objects.filter(pk=project).first()
        if target is None:
            raise CommandError(f"project {project} does not exist")
        if not file.is_file():
            raise CommandError(f"{file} is not a file")
        try:
            prompts = services.prompts_import(project=target, raw=file.read_bytes())
        except RanklabError as error:
            raise CommandError(f"{file}: {error.message}; nothing was imported") from error
        self.stdout.write(self.style.SUCCESS(f"Imported {len(prompts)} prompts into {target}."))
