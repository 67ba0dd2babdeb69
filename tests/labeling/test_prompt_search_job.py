"""The search index after an import (PostgreSQL): the text written with the prompts, the
job that indexes it queued on commit, in batches, idempotent, and caught up after a
failure or a lost worker; none of it on SQLite."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from core import db, jobs
from core.jobs import JobStatus
from labeling.models import Prompt, PromptSearchJob, PromptSearchText
from labeling.services import search_index
from tests.helpers import import_prompts, sample_records

pytestmark = pytest.mark.django_db

POSTGRESQL_ONLY = "prompts are indexed after their import on PostgreSQL only"


def pending(project) -> int:
    return PromptSearchText.objects.filter(project=project, indexed=False).count()


def indexed_ids() -> set[int]:
    return set(PromptSearchText.objects.filter(indexed=True).values_list("prompt_id", flat=True))


def text_in_database(prompt_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT labeling_prompt_text(messages) FROM labeling_prompt WHERE id = %s", [prompt_id]
        )
        return cursor.fetchone()[0]


@pytest.mark.postgresql(POSTGRESQL_ONLY)
def test_an_import_queues_one_job_that_indexes_it_after_commit(
    project, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        prompts = import_prompts(project, sample_records(5))
        # The text is written with the prompts, the index is left for the job.
        assert pending(project) == 5
        assert not indexed_ids()
    assert len(callbacks) == 1
    job = PromptSearchJob.objects.get(project=project)
    assert (job.status, job.prompts_indexed, job.attempts) == (JobStatus.DONE, 5, 1)
    assert pending(project) == 0
    texts = dict(PromptSearchText.objects.filter(indexed=True).values_list("prompt_id", "text"))
    assert texts == {prompt.pk: text_in_database(prompt.pk) for prompt in prompts}
    assert texts[prompts[0].pk] == prompts[0].messages[0]["content"]


@pytest.mark.postgresql(POSTGRESQL_ONLY)
def test_the_job_reads_every_turn_of_a_conversation(project):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi."}]
    import_prompts(project, [{"messages": messages, "responses": ["a", "b"]}])
    search_index.prompt_search_index_pending(project_id=project.pk)
    assert PromptSearchText.objects.get().text == "Be brief.\nHi."


def test_sqlite_queues_nothing(project, django_capture_on_commit_callbacks):
    if search_index.search_index_in_use():
        pytest.skip("SQLite's behaviour")
    with django_capture_on_commit_callbacks(execute=True):
        import_prompts(project, sample_records(3))
    assert not PromptSearchJob.objects.exists()
    assert not PromptSearchText.objects.exists()
    assert search_index.prompt_search_catch_up() == 0
    out = StringIO()
    call_command("index_prompt_search", stdout=out)
    assert "nothing to index" in out.getvalue()


@pytest.mark.postgresql(POSTGRESQL_ONLY)
def test_batches_take_the_oldest_pending_prompts_and_repeat_nothing(project):
    prompts = import_prompts(project, sample_records(7))
    taken = [search_index.prompt_search_index_batch(project_id=project.pk, size=3)]
    assert indexed_ids() == {prompt.pk for prompt in prompts[:3]}
    while taken[-1]:
        taken.append(search_index.prompt_search_index_batch(project_id=project.pk, size=3))
    assert taken == [3, 3, 1, 0]
    assert indexed_ids() == {prompt.pk for prompt in prompts}
    assert search_index.prompt_search_index_pending(project_id=project.pk) == 0


@pytest.mark.postgresql(POSTGRESQL_ONLY)
def test_a_job_runs_once_and_a_second_job_finds_nothing_left(
    project, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr(search_index, "SEARCH_INDEX_BATCH", 2)
    with django_capture_on_commit_callbacks(execute=True):
        import_prompts(project, sample_records(5))
    job = PromptSearchJob.objects.get()
    assert (job.status, job.prompts_indexed) == (JobStatus.DONE, 5)
    # The same message delivered again: the job is done, nothing runs twice.
    assert search_index.prompt_search_index_run(job_id=job.pk)["status"] == "skipped"
    with django_capture_on_commit_callbacks(execute=True):
        again = search_index.prompt_search_job_queue(project_id=project.pk)
    assert again is not None
    again.refresh_from_db()
    assert (again.status, again.prompts_indexed) == (JobStatus.DONE, 0)
    assert len(indexed_ids()) == 5


@pytest.mark.postgresql(POSTGRESQL_ONLY)
def test_a_failed_job_is_caught_up_by_the_sweep(
    project, django_capture_on_commit_callbacks, monkeypatch
):
    real_batch = search_index.prompt_search_index_batch
    calls = []

    def fail_on_second_batch(**kwargs):
        calls.append(kwargs)
        if len(calls) == 2:
            raise RuntimeError("database went away")
        return real_batch(**kwargs)

    monkeypatch.setattr(search_index, "SEARCH_INDEX_BATCH", 2)
    monkeypatch.setattr(search_index, "prompt_search_index_batch", fail_on_second_batch)
    with django_capture_on_commit_callbacks(execute=True):
        import_prompts(project, sample_records(5))
    job = PromptSearchJob.objects.get()
    assert job.status == JobStatus.FAILED
    assert "database went away" in job.error
    assert pending(project) == 3  # the first batch stays indexed

    # Not yet: the prompts were queued a moment ago.
    assert search_index.prompt_search_catch_up() == 0
    later = timezone.now() + search_index.catch_up_after() + timedelta(seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert search_index.prompt_search_catch_up(now=later) == 1
    assert pending(project) == 0
    assert PromptSearchJob.objects.filter(status=JobStatus.DONE).get().prompts_indexed == 3


@pytest.mark.postgresql(POSTGRESQL_ONLY)
def test_a_job_whose_worker_died_is_sent_again_and_finishes(project):
    import_prompts(project, sample_records(4))
    long_ago = timezone.now() - timedelta(minutes=10)
    job = PromptSearchJob.objects.create(
        project=project,
        status=JobStatus.RUNNING,
        attempts=1,
        created_at=long_ago,
        started_at=long_ago,
        heartbeat_at=long_ago,
    )
    later = timezone.now() + search_index.catch_up_after() + timedelta(seconds=1)
    # A running job counts as live: the catch-up leaves the project to it ...
    assert search_index.prompt_search_catch_up(now=later) == 0
    # ... and the lifecycle's sweep sends its message again; it is retaken and finishes.
    result = jobs.jobs_sweep_kind(PromptSearchJob)
    assert result.resent == (job.pk,)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.prompts_indexed) == (JobStatus.DONE, 2, 4)
    assert pending(project) == 0


@pytest.mark.postgresql(POSTGRESQL_ONLY)
def test_prompts_written_outside_an_import_are_caught_up(
    project, django_capture_on_commit_callbacks
):
    prompt = Prompt.objects.create(
        project=project, messages=[{"role": "user", "content": "Arena question"}]
    )
    assert pending(project) == 1  # written by the database, no job of its own
    later = timezone.now() + search_index.catch_up_after() + timedelta(seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert search_index.prompt_search_catch_up(now=later) == 1
    assert indexed_ids() == {prompt.pk}
    assert PromptSearchText.objects.get(prompt=prompt).text == "Arena question"


@pytest.mark.postgresql(POSTGRESQL_ONLY)
def test_the_command_indexes_every_pending_prompt(project, lead):
    from labeling import services

    other = services.project_create(creator=lead, name="Other")
    import_prompts(project, sample_records(3))
    import_prompts(other, sample_records(2))
    out = StringIO()
    call_command("index_prompt_search", "--project", str(other.pk), stdout=out)
    assert "indexed 2 prompts" in out.getvalue()
    assert pending(project) == 3
    call_command("index_prompt_search", stdout=out)
    assert len(indexed_ids()) == 5 and pending(project) == 0


@pytest.fixture
def analyzed(monkeypatch) -> list[tuple]:
    """ANALYZEs asked for, with a threshold of 4 new prompts."""
    calls: list[tuple] = []
    monkeypatch.setattr(search_index, "ANALYZE_AFTER_ROWS", 4)
    monkeypatch.setattr(db, "analyze_columns", lambda model, names: calls.append((model, names)))
    return calls


@pytest.mark.postgresql(POSTGRESQL_ONLY)
def test_the_job_after_a_big_import_refreshes_the_planner_statistics(
    project, analyzed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        import_prompts(project, sample_records(3))
    assert analyzed == []  # a small import moves no statistics
    with django_capture_on_commit_callbacks() as callbacks:
        import_prompts(project, sample_records(4, prefix="q"))
    assert analyzed == []  # not inside the import's transaction: its job does it
    for callback in callbacks:
        callback()
    [(model, names)] = analyzed
    assert model is Prompt and "is_complete" in names and "messages" not in names
    assert PromptSearchJob.objects.filter(project=project).latest("pk").prompts_indexed == 4


@pytest.mark.postgresql(POSTGRESQL_ONLY)
def test_a_refresh_that_fails_fails_the_job_with_its_reason(
    project, monkeypatch, django_capture_on_commit_callbacks
):
    def refused(model, names):
        raise RuntimeError("ANALYZE refused")

    monkeypatch.setattr(search_index, "ANALYZE_AFTER_ROWS", 4)
    monkeypatch.setattr(db, "analyze_columns", refused)
    with django_capture_on_commit_callbacks(execute=True):
        import_prompts(project, sample_records(4))
    job = PromptSearchJob.objects.get(project=project)
    assert job.status == JobStatus.FAILED and "ANALYZE refused" in job.error
    assert pending(project) == 0  # the rows it indexed stay indexed


@pytest.mark.postgresql(POSTGRESQL_ONLY)
def test_the_command_refreshes_the_statistics_after_indexing_many(project, analyzed):
    import_prompts(project, sample_records(5))
    call_command("index_prompt_search", stdout=StringIO())
    assert [model for model, names in analyzed] == [Prompt]


@pytest.mark.postgresql("ANALYZE of named columns")
def test_analyze_of_the_planner_columns_runs(project):
    db.analyze_columns(Prompt, search_index.PROMPT_PLANNER_FIELDS)  # no error: real columns
