"""Agreement runs read from the read replica when one is configured, and write only to the
primary (the replica test database and its fixtures are the exports' own)."""

from __future__ import annotations

import json

import pytest
from django.db import DEFAULT_DB_ALIAS

from core import db
from core.jobs import JobStatus
from labeling import services as labeling_services
from labeling.models import Prompt
from rankings.models import AgreementRun, PromptAgreement, Ranking, RaterScore
from rankings.runs import services
from tests.exports.test_replica_reads import (  # noqa: F401 (fixtures)
    BOTH,
    replica_database,
    replicate,
    routed,
)
from tests.helpers import sample_records
from tests.rankings.agreement_helpers import rank_in_turns

pytestmark = pytest.mark.usefixtures("eager", "routed")


@pytest.mark.django_db(databases=BOTH)
def test_agreement_run_reads_the_replica_and_writes_only_the_primary(
    project, make_crowd, django_capture_on_commit_callbacks
):
    labeling_services.project_update(project=project, overlap=3)
    labeling_services.prompts_import(
        project=project, raw=json.dumps(sample_records(6, responses=4))
    )
    rank_in_turns(project, make_crowd(4), seed=3)
    replicate()
    # The replica has not replayed the rankings of the newest prompt yet.
    lagging = Prompt.objects.filter(project=project).order_by("-id").first()
    assert lagging is not None
    Ranking.objects.using(db.REPLICA).filter(prompt=lagging).delete()
    on_replica = Ranking.objects.using(db.REPLICA).filter(project=project)

    with django_capture_on_commit_callbacks(execute=True):
        run = services.agreement_run_request(project=project, trigger="manual")
    run.refresh_from_db()

    assert run.status == JobStatus.DONE, run.error
    assert (
        run.n_rankings == on_replica.count() == Ranking.objects.filter(project=project).count() - 3
    )
    assert run.last_ranking_id == max(on_replica.values_list("id", flat=True))
    stored = set(PromptAgreement.objects.filter(run=run).values_list("prompt_id", flat=True))
    assert stored == set(on_replica.values_list("prompt_id", flat=True))
    assert lagging.pk not in stored
    assert RaterScore.objects.using(DEFAULT_DB_ALIAS).filter(run=run).count() == 4
    assert not AgreementRun.objects.using(db.REPLICA).filter(pk=run.pk).exists()
    assert not PromptAgreement.objects.using(db.REPLICA).exists()
    assert not RaterScore.objects.using(db.REPLICA).exists()
