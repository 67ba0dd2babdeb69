"""`manage.py index_prompt_search [--project ID]`: index every prompt still pending for the
prompt browser's search, in-process, a batch per transaction. For catching up by hand (no
worker running, or after restoring a dump); the jobs and the sweep do it otherwise."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from labeling.services.search_index import prompt_search_index_pending, search_index_in_use


class Command(BaseCommand):
    help = "Index the prompts not yet indexed for the prompt browser's search (PostgreSQL)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", type=int, help="only this project's prompts")

    def handle(self, *args: Any, **options: Any) -> None:
        if not search_index_in_use():
            self.stdout.write("nothing to index: this database searches prompts directly")
            return
        indexed = prompt_search_index_pending(project_id=options["project"])
        self.stdout.write(f"indexed {indexed:,} prompts")
