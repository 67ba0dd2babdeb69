"""Task kinds: what a project's raters do, one registered handler per kind.

A project's `task_kind` (`rank`, `demonstration`, `red_team`, `arena`) picks the handler
that serves its rater page and its `next-task` payload and checks its `task_options`.
Higher apps register their kinds when they load (`rankings` registers `rank`, `authoring`
the writing kinds), so labeling never imports them. Leases, overlap, pause, skip and the
guidelines gate stay the same for every kind: the handler is asked only for what differs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.errors import InvalidInput, NotAllowed
from labeling.models import MIN_RESPONSES, Project, TaskKind

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.http import HttpRequest, HttpResponse

    from labeling.models import Membership

OptionsCleaner = Callable[[dict[str, Any]], dict[str, Any]]
OptionsCheck = Callable[[dict[str, Any], Project | None], None]
NextTask = Callable[[Project, "User", "Membership"], dict[str, Any] | None]
RaterPage = Callable[["HttpRequest", Project, "Membership"], "HttpResponse"]


def _no_options(options: dict[str, Any]) -> dict[str, Any]:
    if options:
        raise InvalidInput(
            f"this task kind takes no options (got {', '.join(sorted(options))})",
            field="task_options",
        )
    return {}


def _no_project_checks(options: dict[str, Any], project: Project | None) -> None:
    return None


def _standard_minimum(project: Project) -> int:
    return MIN_RESPONSES


@dataclass(frozen=True)
class TaskKindHandler:
    kind: str
    next_task: NextTask
    """The rater's current task as the API's payload (without `kind`), or None: none left."""
    rater_page: RaterPage
    """The rater page for this kind, after membership, pause and guidelines are checked."""
    clean_options: OptionsCleaner = _no_options
    """The kind's `task_options`, checked and normalised; InvalidInput names the option."""
    check_for_project: OptionsCheck = _no_project_checks
    """Checks of the cleaned options against the project (None while it is being created),
    e.g. that the endpoints they name are the project's own; InvalidInput names the option."""
    min_responses: Callable[[Project], int] = field(default=_standard_minimum)
    """Responses a prompt needs before the queue serves it (0: the rater writes the reply)."""


_HANDLERS: dict[str, TaskKindHandler] = {}


def register_task_kind(handler: TaskKindHandler) -> None:
    if handler.kind not in TaskKind.values:
        raise ValueError(f"unknown task kind {handler.kind!r}; add it to TaskKind first")
    _HANDLERS[handler.kind] = handler


def task_kind_handler(kind: str) -> TaskKindHandler:
    handler = _HANDLERS.get(kind)
    if handler is None:
        raise NotAllowed(
            f"the task kind {kind!r} is not available on this server", code="task_kind"
        )
    return handler


def clean_task_options(
    kind: str, options: Any, *, project: Project | None = None
) -> dict[str, Any]:
    """A kind's options checked by its handler (against `project`, the one they are for, or
    None when it is being created); errors name `task_options` or the option."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise InvalidInput("must be an object of the task kind's options", field="task_options")
    if kind not in TaskKind.values:
        raise InvalidInput(f"must be one of: {', '.join(TaskKind.values)}", field="task_kind")
    handler = _HANDLERS.get(kind)
    if handler is None:
        raise InvalidInput(
            f"the task kind {kind!r} is not available on this server", field="task_kind"
        )
    cleaned = handler.clean_options(options)
    handler.check_for_project(cleaned, project)
    return cleaned


def min_responses(project: Project) -> int:
    """Responses a prompt of this project needs before it is served."""
    handler = _HANDLERS.get(project.task_kind)
    return _standard_minimum(project) if handler is None else handler.min_responses(project)
