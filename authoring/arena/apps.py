"""The arena: the rater's own prompt, two anonymous live models side by side, a vote per turn."""

from django.apps import AppConfig


class ArenaConfig(AppConfig):
    name = "authoring.arena"
    label = "arena"
    verbose_name = "Arena"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from authoring.arena.handler import ARENA
        from authoring.arena.quality import arena_run_extension
        from labeling.task_kinds import register_task_kind
        from rankings.runs.extensions import register_run_extension

        register_task_kind(ARENA)
        # Outlier voters are judged after each agreement run, on its schedule and trigger.
        register_run_extension("arena", arena_run_extension)
