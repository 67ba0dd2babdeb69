"""Celery tasks of the labeling app: thin interfaces that load by id and call a service.

``LabelingConfig.ready`` imports this module, so every process that may send them by name
has them registered.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from labeling.services import search_index


def prompt_search_index(job_id: int) -> dict[str, Any]:
    """Index a project's pending prompts for the prompt browser's search."""
    return search_index.prompt_search_index_run(job_id=job_id)


# Registered by call rather than as a decorator: Celery's decorators are untyped.
prompt_search_index_task = shared_task(name=search_index.SEARCH_INDEX_TASK)(prompt_search_index)
