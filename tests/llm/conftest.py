from __future__ import annotations

import json

import pytest

from labeling import services as labeling_services
from labeling.models import Prompt
from llm.models import CallStatus, JudgeVerdict
from rankings.models import Ranking
from tests.helpers import sample_records
from tests.llm.helpers import make_endpoint
from tests.rankings.agreement_helpers import rank_in_turns


@pytest.fixture(autouse=True)
def in_process_semaphore(settings):
    """Endpoint slots in process unless a test asks for Redis."""
    settings.LLM_SEMAPHORE_URL = ""


@pytest.fixture
def ranked_and_judged(project, make_user, add_member, fake_llm):
    labeling_services.project_update(project=project, overlap=2, gold_rate=0.0, max_overlap=3)
    labeling_services.prompts_import(
        project=project, raw=json.dumps(sample_records(4, responses=3))
    )
    rank_in_turns(project, [add_member(make_user(f"h{i}")) for i in range(2)], seed=4)
    endpoint = make_endpoint(project, fake_llm.base_url, name="judge")
    for prompt in Prompt.objects.filter(project=project).order_by("pk"):
        human = Ranking.objects.filter(prompt=prompt).order_by("id")[0]
        groups = human.groups if prompt.external_id != "p1" else list(reversed(human.groups))
        JudgeVerdict.objects.create(
            endpoint=endpoint, prompt=prompt, status=CallStatus.DONE, groups=groups,
            consistent=prompt.external_id != "p2", pairs=3,
        )  # fmt: skip
    return endpoint
