"""Two real Celery worker processes (consuming from a Redis of the test's own) share the parts
of one agreement run and store the run one worker alone stores, and the run computed in
memory; a run whose message both workers receive is computed once, its rows stored once.

The workers are those of the fault tests (``tests.faults``): separate processes on the
test's PostgreSQL database, on a queue of the test's own.
"""

from __future__ import annotations

import json
import math

import pytest

from core.jobs import JobStatus
from labeling import services as labeling_services
from labeling.models import Project
from rankings.models import AgreementRun, AgreementRunPart, PromptAgreement, RaterScore
from rankings.runs import maths, services, tasks
from rankings.runs.data import agreement_data
from rankings.stats.registry import RATER_STATISTICS
from tests.faults.helpers import wait_until
from tests.helpers import sample_records
from tests.rankings.agreement_helpers import rank_in_turns

pytestmark = [
    pytest.mark.postgresql("worker processes share the test database"),
    pytest.mark.celery_worker,
    pytest.mark.django_db(transaction=True),
]

PROMPTS = 40
PARTS = {"AGREEMENT_PART_PROMPTS": "4"}  # ten parts per pass
SLOW = "0.3"  # seconds of each part's maths: both workers get a share


@pytest.fixture
def ranked(project, make_user, add_member):
    crowd = [add_member(make_user(f"worker-crowd{index}")) for index in range(4)]
    labeling_services.project_update(project=project, overlap=3)
    # No run queued by the rankings themselves: the tests count the runs they request.
    Project.objects.filter(pk=project.pk).update(agreement_every_n_rankings=0)
    labeling_services.prompts_import(
        project=project, raw=json.dumps(sample_records(PROMPTS, responses=4))
    )
    return rank_in_turns(project, crowd, seed=21)


def finished_run(run_id: int) -> AgreementRun:
    wait_until(
        lambda: AgreementRun.objects.get(pk=run_id).status in (JobStatus.DONE, JobStatus.FAILED),
        seconds=90,
        what=f"agreement run {run_id} finished",
    )
    return AgreementRun.objects.get(pk=run_id)


def workers_of(run: AgreementRun) -> set[str]:
    return set(AgreementRunPart.objects.filter(run=run).values_list("worker", flat=True))


def stored(run: AgreementRun) -> tuple[dict, dict, dict]:
    scores = {
        score.rater_id: {stat.column: getattr(score, stat.column) for stat in RATER_STATISTICS}
        for score in RaterScore.objects.filter(run=run)
    }
    rows = {
        row.prompt_id: (row.n_rankings, row.agreement, row.consensus, row.scores)
        for row in PromptAgreement.objects.filter(run=run)
    }
    return run.metrics, scores, rows


def assert_same(value, expected, what) -> None:
    if isinstance(expected, dict):
        assert value.keys() == expected.keys(), what
        for key in expected:
            assert_same(value[key], expected[key], f"{what}.{key}")
    elif isinstance(expected, float) and not math.isnan(expected):
        assert value == pytest.approx(expected, rel=1e-9, abs=1e-12), what
    elif isinstance(expected, list | tuple) and any(isinstance(v, float) for v in expected):
        assert list(value) == pytest.approx(list(expected), rel=1e-9, abs=1e-12), what
    else:
        assert value == expected, what


def assert_stored_once(run: AgreementRun, ranked) -> None:
    assert run.status == JobStatus.DONE, run.error
    assert run.attempts == 1
    computed = AgreementRunPart.objects.filter(run=run)
    assert computed.count() == 20  # ten parts in each pass, each once
    assert set(computed.values_list("status", "attempts")) == {(JobStatus.DONE, 1)}
    assert PromptAgreement.objects.filter(run=run).count() == PROMPTS == run.n_prompts
    assert RaterScore.objects.filter(run=run).count() == 4
    assert run.n_rankings == len(ranked)


def test_two_workers_share_a_run_and_store_what_one_worker_stores(
    broker, start_worker, project, ranked
):
    first = start_worker(maths_delay=SLOW, env_extra=PARTS)
    second = start_worker(maths_delay=SLOW, env_extra=PARTS)

    shared = finished_run(services.agreement_run_request(project=project, trigger="manual").pk)

    assert_stored_once(shared, ranked)
    assert len(workers_of(shared)) == 2, "both workers computed parts of the run"

    second.stop()
    alone = finished_run(services.agreement_run_request(project=project, trigger="manual").pk)

    assert_stored_once(alone, ranked)
    assert len(workers_of(alone)) == 1
    assert_same(stored(shared), stored(alone), "run")
    # And both are the run of every ranking in memory, computed in this process.
    expected = maths.agreement_maths(agreement_data(project=project))
    for key, value in expected.summary.items():
        if value is None:
            assert shared.metrics[key] is None, key
        else:
            assert shared.metrics[key] == pytest.approx(value, rel=1e-7, abs=1e-9), key
    first.stop()


def test_a_run_both_workers_are_sent_is_computed_once(broker, start_worker, project, ranked):
    start_worker(maths_delay=SLOW, env_extra=PARTS)
    start_worker(maths_delay=SLOW, env_extra=PARTS)

    run = services.agreement_run_request(project=project, trigger="manual")
    # The same message again, as a redelivery or a second sweep would send it.
    tasks.agreement_run_compute_task.delay(run.pk)
    done = finished_run(run.pk)

    assert_stored_once(done, ranked)
    assert AgreementRun.objects.filter(project=project).count() == 1
