"""The demo's demonstration project: built offline through the services, once."""

from __future__ import annotations

import pytest

from authoring.demonstrations.models import Demonstration, DemonstrationStatus
from demo.demonstrations import WORK, demo_demonstrations_ensure
from rankings.models import Flag, FlagCode

pytestmark = pytest.mark.django_db


def test_demo_project_has_reviewed_demonstrations_and_a_flagged_writer(lead, make_user):
    people = {"lead": lead, "rater1": make_user("rater1")}
    project = demo_demonstrations_ensure(people=people)
    statuses = list(Demonstration.objects.filter(project=project).values_list("status", flat=True))
    assert len(statuses) == len(WORK)
    assert statuses.count(DemonstrationStatus.REJECTED) == 3
    assert statuses.count(DemonstrationStatus.EDITED) == 1
    flag = Flag.objects.get(project=project, code=FlagCode.DEMONSTRATIONS_REJECTED)
    assert flag.rater.username == "demo-writer-hasty" and flag.evidence["rejected"] == 3
    assert demo_demonstrations_ensure(people=people) == project
    assert Demonstration.objects.count() == len(WORK)
