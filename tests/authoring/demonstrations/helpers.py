"""Plain helpers (not fixtures) shared by these tests."""

from __future__ import annotations

from labeling import services as labeling_services
from labeling.models import Project, TaskKind


def make_demo_project(lead, *, mode: str = "write", overlap: int = 1, **options) -> Project:
    project = labeling_services.project_create(
        creator=lead,
        name=f"Demonstrations ({mode})",
        overlap=overlap,
        gold_rate=0.0,
        task_kind=TaskKind.DEMONSTRATION,
        task_options={"mode": mode, **options},
        guidelines="Be **helpful** and honest.",
    )
    return project
