"""Schemathesis against the OpenAPI schema at /api/schema/: every operation, with inputs
generated from the schema (valid and invalid), signed in as the lead of a seeded project
with a token, path parameters pointing at its real objects. No response may be a server
error, and every documented response must match its schema.

Bounded: `EXAMPLES` cases per operation (SCHEMA_FUZZ_EXAMPLES; valid and invalid), no
deadline, each operation its own test so its writes are rolled back before the next.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.errors import SerializationNotPossible
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from config.wsgi import application
from core.jobs import JobStatus
from exports import services as export_services
from labeling.accounts.services import api_token_create
from rankings.models import AgreementRun
from rankings.runs import services as run_services
from tests.helpers import import_prompts, sample_records

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("SCHEMA_FUZZ_EXAMPLES") or 12)
"""Cases per operation; CI keeps the default (about a minute), a longer run sets more."""
CHECKS = [not_a_server_error, response_schema_conformance]


def load_schema() -> Any:
    return schemathesis.openapi.from_wsgi("/api/schema/", application)


SCHEMA = load_schema()
OPERATIONS = {
    operation.label: operation
    for operation in (result.ok() for result in SCHEMA.get_all_operations())
}


@pytest.fixture
def seeded(project, lead, rater, rater2, make_ranking_for, settings, tmp_path) -> dict[str, Any]:
    """A project with prompts, rankings, a finished export and run; the ids the paths use."""
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "exports")},
        },
    }
    prompts = import_prompts(project, sample_records(6))
    for prompt in prompts:
        make_ranking_for(prompt, rater, [[0], [1], [2]])
        make_ranking_for(prompt, rater2, [[1], [0], [2]])
    export = export_services.export_job_create(project=project, created_by=lead)
    export_services.export_job_run(job_id=export.pk)
    run = run_services.agreement_run_request(project=project, trigger="manual")
    run_services.agreement_run_compute(run_id=run.pk)
    assert AgreementRun.objects.get(pk=run.pk).status == JobStatus.DONE
    spare = api_token_create(user=lead, name="spare")
    secret = api_token_create(user=lead, name="fuzz").secret
    ids = {
        "project_id": project.pk,
        "export_id": export.pk,
        "prompt_id": prompts[0].pk,
        "username": rater.username,
        "assignment_id": 1,
        "flag_id": 1,
        "endpoint_id": 1,
        "job_id": 1,
        "token_id": getattr(spare, "token_id", None) or getattr(spare, "pk", 1),
    }
    return {"ids": ids, "headers": {"Authorization": f"Token {secret}"}}


@pytest.fixture
def make_ranking_for():
    from tests.factories import RankingFactory

    def make(prompt, rater, positions):
        return RankingFactory(prompt=prompt, rater=rater, positions=positions)

    return make


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_no_input_gets_a_server_error_or_an_undocumented_answer(label, seeded):
    operation = OPERATIONS[label]
    names = {parameter.name for parameter in operation.path_parameters}
    path = {name: value for name, value in seeded["ids"].items() if name in names}
    strategies = [
        operation.as_strategy(mode, path_parameters=path or None, headers=seeded["headers"])
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @given(case=st.one_of(strategies))
    def run(case) -> None:
        try:
            response = case.call(headers=seeded["headers"])
        except SerializationNotPossible:  # a media type the generator cannot write
            return
        STATUSES[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    run()


STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="module", autouse=True)
def figures():
    """The answers given, by status code (for docs/reliability.md): `pytest -s`."""
    yield
    by_status = dict(sorted(STATUSES.items()))
    print(f"\nschema fuzz: {sum(STATUSES.values())} requests, by status {by_status}")


@pytest.fixture(autouse=True)
def connection_kept_between_requests() -> Iterator[None]:
    """Requests go to the WSGI app directly, inside the test's transaction: like Django's
    test client, keep the connection open across them."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
