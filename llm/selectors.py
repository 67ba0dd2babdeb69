"""Reads of the llm app: what a user may see of endpoints and jobs."""

from __future__ import annotations

from typing import Any

from core.errors import NotFound
from labeling import selectors as labeling_selectors
from labeling.models import Project
from llm.models import GenerationJob, ModelEndpoint

MANAGER_ROLES = labeling_selectors.DATA_ROLES
"""Leads and ML engineers manage endpoints and run generation and judges."""


def managed_project(*, user: Any, project_id: int) -> Project:
    return labeling_selectors.project_for_user(
        user=user, project_id=project_id, roles=MANAGER_ROLES
    )


def endpoint_for_user(*, user: Any, endpoint_id: int) -> ModelEndpoint:
    endpoint = ModelEndpoint.objects.select_related("project").filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("endpoint not found")
    managed_project(user=user, project_id=endpoint.project_id)
    return endpoint


def generation_job_for_user(*, user: Any, job_id: int) -> GenerationJob:
    job = GenerationJob.objects.filter(pk=job_id).first()
    if job is None:
        raise NotFound("generation not found")
    managed_project(user=user, project_id=job.project_id)
    return job
