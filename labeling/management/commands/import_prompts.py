"""`manage.py import_prompts PROJECT FILE` (also `ranklab manage import_prompts …`): the
API's import from a JSON Lines (or JSON list) file, streamed in batches with a progress bar.

All or nothing, as over the API: a bad line anywhere (even in the last batch) leaves
nothing imported and names the line. On PostgreSQL a file of more than one batch is written
by several processes at once (`--writers`) into a hidden stage that one transaction then
publishes (labeling.services.staged_import); `--writers 1` writes in one transaction.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from core.errors import RanklabError
from labeling import services
from labeling.models import Project
from labeling.services.prompts import IMPORT_BATCH_SIZE, ImportProgress
from labeling.services.staged_import import MAX_WRITERS

BAR_WIDTH = 30


class ProgressBar:
    """One line redrawn in place on a terminal: share of the file read, prompts, speed."""

    def __init__(self, stream: OutputWrapper) -> None:
        self.stream = stream
        self.started = time.monotonic()

    def __call__(self, progress: ImportProgress) -> None:
        share = progress.bytes_read / progress.total_bytes if progress.total_bytes else 1.0
        filled = round(share * BAR_WIDTH)
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = progress.prompts / elapsed
        left = elapsed * (1 - share) / share if share > 0 else 0.0
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {share:4.0%} "
            f"{progress.prompts:,} prompts, {rate:,.0f}/s, {left:.0f} s left ",
            ending="",
        )
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("")  # ends the bar's line
        self.stream.flush()


class Command(BaseCommand):
    help = (
        "Import prompts and responses from a JSON Lines (or JSON list) file, all or nothing. "
        "JSON Lines files are streamed in batches, so memory stays flat in the file's size."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", type=int, help="Project id")
        parser.add_argument("file", type=Path, help="Path to a .jsonl (or .json list) file")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=IMPORT_BATCH_SIZE,
            help=f"Prompts validated and written per batch (default {IMPORT_BATCH_SIZE})",
        )
        parser.add_argument(
            "--writers",
            type=int,
            default=services.default_writers(),
            help="Processes writing at once on PostgreSQL (default: one per CPU, one per two "
            f"when the database runs on this machine, at most {MAX_WRITERS}); 1 writes in one "
            "transaction",
        )
        parser.add_argument(
            "--progress",
            action="store_true",
            default=None,
            help="Show the progress bar even when stderr is not a terminal",
        )
        parser.add_argument(
            "--no-progress",
            action="store_false",
            dest="progress",
            help="Never show the progress bar (the default when stderr is not a terminal)",
        )

    def handle(
        self,
        *args: Any,
        project: int,
        file: Path,
        batch_size: int,
        writers: int,
        progress: bool | None,
        **options: Any,
    ) -> None:
        target = Project.objects.filter(pk=project).first()
        if target is None:
            raise CommandError(f"project {project} does not exist")
        if not file.is_file():
            raise CommandError(f"{file} is not a file")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        if writers < 1:
            raise CommandError("--writers must be at least 1")
        show_bar = self.stderr.isatty() if progress is None else progress
        bar = ProgressBar(self.stderr) if show_bar else None
        started = time.monotonic()
        try:
            summary = services.prompts_import_file_parallel(
                project=target, path=file, writers=writers, batch_size=batch_size, on_progress=bar
            )
        except RanklabError as error:
            raise CommandError(f"{file}: {error.message}; nothing was imported") from error
        finally:
            if bar is not None:
                bar.finish()
        seconds = time.monotonic() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {summary.prompts:,} prompts ({summary.responses:,} responses) "
                f"into {target} in {seconds:.1f} s"
                + (f" ({summary.writers} writers)." if summary.writers > 1 else ".")
            )
        )
