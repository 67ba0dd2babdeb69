"""Fixtures of the demonstration kind: a project of writers and reviewers."""

from __future__ import annotations

import pytest

from labeling.models import Project
from tests.authoring.demonstrations.helpers import make_demo_project
from tests.helpers import import_prompts, sample_records


@pytest.fixture
def demo_project(lead) -> Project:
    project = make_demo_project(lead, review_rate=1.0)
    import_prompts(project, sample_records(3, responses=0))
    return project


@pytest.fixture
def rewrite_project(lead) -> Project:
    project = make_demo_project(lead, mode="rank_then_rewrite", review_rate=1.0)
    import_prompts(project, sample_records(3, responses=3))
    return project


@pytest.fixture
def join():
    """Add users to a project as raters who have seen its guidelines."""
    from django.utils import timezone

    from labeling.models import Membership

    def add(project, *users):
        for user in users:
            Membership.objects.create(project=project, user=user, guidelines_seen_at=timezone.now())
        return users

    return add
