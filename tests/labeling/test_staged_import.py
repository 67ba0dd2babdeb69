"""The command-line import written by several processes into a hidden stage and published
in one transaction (labeling.services.staged_import): the same rows in the file's order as
one transaction writes, the same errors naming the same lines, nothing left behind."""

from __future__ import annotations

import io
import itertools
import json
import multiprocessing
import os
import random
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.utils import timezone

from core import db
from core.errors import NotFound
from labeling import selectors
from labeling.importing import file_ranges, parse_import_body, read_json_lines, validate_records
from labeling.models import AuditAction, AuditEvent, Project, Prompt, PromptSearchText, Response
from labeling.services import staged_import
from labeling.services.prompts import prompts_copy
from tests.helpers import sample_records
from tests.labeling.test_import import imported_content
from tests.labeling.test_import_batches import expected_content, mixed_records
from tests.labeling.test_import_command import write_jsonl

POSTGRESQL_ONLY = "writers are processes with their own PostgreSQL connections"


def staged(test):
    """PostgreSQL, and committed data: the writer processes cannot see a test's transaction.
    Earlier tests leave idle threads behind (servers' request threads), which the command's
    process never has: the import is told there are none, so it forks its writers."""
    for mark in (
        pytest.mark.postgresql(POSTGRESQL_ONLY),
        pytest.mark.django_db(transaction=True),
        pytest.mark.usefixtures("threads_unseen"),
        pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
    ):
        test = mark(test)
    return test


@pytest.fixture
def threads_unseen(monkeypatch):
    monkeypatch.setattr(staged_import, "other_threads_running", lambda: False)


def run(project: Project, path: Path, *options: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_prompts", str(project.pk), str(path), *options, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def stages_left() -> int:
    return Project.objects.filter(staged_for__isnull=False).count()


# Cutting the file -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_ranges_are_whole_lines_read_as_the_whole_file_reads(tmp_path, seed, count):
    rng = random.Random(seed)
    lines = []
    for number in range(rng.randint(1, 40)):
        kind = rng.random()
        if kind < 0.15:
            lines.append(rng.choice(["", "  ", "\t"]))  # blank: no record, still a line
        else:
            lines.append(json.dumps({"n": number, "pad": "x" * rng.randint(0, 300)}))
    ending = rng.choice(["\n", "\r\n"])
    raw = ("\ufeff" if seed % 2 else "").encode() + (
        ending.join(lines) + rng.choice(["", ending])
    ).encode()
    path = tmp_path / "f.jsonl"
    path.write_bytes(raw)
    with path.open("rb") as stream:
        whole = list(read_json_lines(stream))

    ranges = file_ranges(path, count)

    assert 1 <= len(ranges) <= count
    assert ranges[0].start == 0 and ranges[-1].end == path.stat().st_size
    assert all(a.end == b.start for a, b in itertools.pairwise(ranges))
    assert sum(part.lines for part in ranges) == len(raw.split(b"\n")) - raw.endswith(b"\n")
    pieces = []
    with path.open("rb") as stream:
        for part in ranges:
            stream.seek(part.start)
            got = list(read_json_lines(stream, first_line=part.first_line, end=part.end))
            assert len(got) <= part.lines
            pieces.extend(got)
    assert pieces == whole


# Importing --------------------------------------------------------------------------------------


@staged
@pytest.mark.parametrize("writers", [1, 2, 3])
def test_several_writers_store_what_one_transaction_stores_in_file_order(
    tmp_path, project, writers
):
    records = mixed_records(8) + sample_records(9, prefix="q")
    path = write_jsonl(tmp_path / "p.jsonl", records)

    out, _ = run(project, path, "--batch-size", "2", "--writers", str(writers))

    assert f"Imported 17 prompts (56 responses) into {project} in" in out
    assert (f"({writers} writers)" in out) == (writers > 1)
    assert imported_content(project) == expected_content(records)  # ids follow the file
    prompts = Prompt.objects.filter(project=project)
    [event] = AuditEvent.objects.filter(project=project, action=AuditAction.PROMPTS_IMPORT)
    assert event.changes == {"created": 17, "first_id": prompts.order_by("id").first().pk}
    searchable = PromptSearchText.objects.filter(project_id=project.pk)
    assert sorted(searchable.values_list("prompt_id", flat=True)) == sorted(
        prompts.values_list("pk", flat=True)
    )
    assert stages_left() == 0
    assert Prompt.objects.count() == 17 and Response.objects.count() == 56


@staged
def test_raters_see_nothing_of_an_import_until_it_is_published(
    tmp_path, project, make_user, add_member, monkeypatch
):
    from labeling import services

    rater = add_member(make_user("rater"))
    written, go, seen = tmp_path / "written", tmp_path / "go", tmp_path / "seen.json"
    copy = prompts_copy

    def waits_before_its_second_batch(**kwargs):
        if kwargs["records"][0].line == 3:  # the first writer's first batch is committed
            written.touch()
            wait_for(go)
        return copy(**kwargs)

    def observe() -> None:  # a process of its own, beside the import's
        try:
            wait_for(written)
            stage = Project.objects.get(staged_for=project)
            seen.write_text(
                json.dumps(
                    {
                        "stage": Prompt.objects.filter(project=stage).count(),
                        "project": Prompt.objects.filter(project=project).count(),
                        "lease": services.lease_next_assignment(project=project, rater=rater)
                        is not None,
                    }
                )
            )
        finally:
            go.touch()
            connections.close_all()
            os._exit(0)  # no interpreter teardown in a fork of the test process

    monkeypatch.setattr(staged_import, "prompts_copy", waits_before_its_second_batch)
    path = write_jsonl(tmp_path / "p.jsonl", sample_records(8))
    connections.close_all()  # the observer is forked: it opens its own connection
    observer = multiprocessing.get_context("fork").Process(target=observe)
    observer.start()
    try:
        out, _ = run(project, path, "--batch-size", "2", "--writers", "2")
    finally:
        go.touch()
        observer.join(60)
    observed = json.loads(seen.read_text())
    assert observed["stage"] >= 2  # committed batches, in the stage (the other writer's too)
    assert observed["project"] == 0 and observed["lease"] is False
    assert "Imported 8 prompts" in out and "(2 writers)" in out
    assert services.lease_next_assignment(project=project, rater=rater) is not None
    assert stages_left() == 0


def wait_for(path: Path, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


@staged
def test_a_bad_line_in_the_last_range_imports_nothing_and_leaves_no_stage(tmp_path, project):
    records = sample_records(12)
    records[11]["responses"][2]["model"] = ["m"]
    path = write_jsonl(tmp_path / "p.jsonl", records)
    with pytest.raises(CommandError, match=r"line 12: responses\[2\]\.model: must be a string"):
        run(project, path, "--batch-size", "2", "--writers", "3")
    assert not Prompt.objects.exists() and not Response.objects.exists()
    assert stages_left() == 0
    assert not AuditEvent.objects.filter(action=AuditAction.PROMPTS_IMPORT).exists()


@staged
@pytest.mark.parametrize("attempt", range(3))
def test_of_two_bad_lines_the_first_in_the_file_is_named(tmp_path, project, attempt):
    path = tmp_path / "p.jsonl"
    lines = [json.dumps(record) for record in sample_records(16)]
    lines[14] = "{oops"  # the last writer's range
    lines[9] = '{"prompt": 3, "responses": ["a", "b"]}'  # the middle writer's
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CommandError, match="line 10: prompt: "):
        run(project, path, "--batch-size", "2", "--writers", "3")
    assert not Prompt.objects.exists()
    assert stages_left() == 0


@staged
def test_an_external_id_repeated_in_another_range_names_both_lines(tmp_path, project):
    records = sample_records(12)
    records[10]["external_id"] = "p1"  # line 11 repeats line 2, in another writer's range
    path = write_jsonl(tmp_path / "p.jsonl", records)
    with pytest.raises(CommandError, match="line 11: external_id: 'p1' repeats line 2"):
        run(project, path, "--batch-size", "2", "--writers", "3")
    assert not Prompt.objects.exists()
    assert stages_left() == 0


@staged
def test_an_external_id_the_project_holds_is_named_and_the_project_kept(tmp_path, project):
    run(project, write_jsonl(tmp_path / "first.jsonl", sample_records(2, prefix="old")))
    records = sample_records(9) + sample_records(2, prefix="old")
    path = write_jsonl(tmp_path / "p.jsonl", records)
    with pytest.raises(CommandError, match="line 10: external_id: 'old0' already exists"):
        run(project, path, "--batch-size", "2", "--writers", "2")
    assert list(Prompt.objects.values_list("external_id", flat=True).order_by("id")) == [
        "old0",
        "old1",
    ]
    assert Response.objects.count() == 6
    assert stages_left() == 0


@staged
def test_a_writer_that_dies_fails_the_import_with_a_reason(tmp_path, project, monkeypatch):
    copy = prompts_copy

    def dies_on_line_nine(**kwargs):
        if any(record.line == 9 for record in kwargs["records"]):
            os._exit(3)  # the writer process ends without a word
        return copy(**kwargs)

    monkeypatch.setattr(staged_import, "prompts_copy", dies_on_line_nine)  # forked writers too
    path = write_jsonl(tmp_path / "p.jsonl", sample_records(12))
    with pytest.raises(CommandError, match=r"an import writer stopped .*exit code 3"):
        run(project, path, "--batch-size", "2", "--writers", "2")
    assert not Prompt.objects.exists() and not Response.objects.exists()
    assert stages_left() == 0


@staged
def test_a_stopped_command_drops_its_stage(tmp_path, project, monkeypatch):
    """SIGTERM, as a supervisor stops a process, mid-import: nothing imported, nothing left."""

    def stops_the_command_on_line_nine(**kwargs):
        if any(record.line == 9 for record in kwargs["records"]):
            os.kill(os.getppid(), signal.SIGTERM)
        return prompts_copy(**kwargs)

    monkeypatch.setattr(staged_import, "prompts_copy", stops_the_command_on_line_nine)
    path = write_jsonl(tmp_path / "p.jsonl", sample_records(12))
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="signal 15"):
        run(project, path, "--batch-size", "2", "--writers", "2")
    assert not Prompt.objects.exists() and not Response.objects.exists()
    assert stages_left() == 0
    assert signal.getsignal(signal.SIGTERM) == handler  # put back


@staged
def test_the_progress_bar_counts_every_writers_batches(tmp_path, project):
    path = write_jsonl(tmp_path / "p.jsonl", sample_records(9))
    _, err = run(project, path, "--batch-size", "2", "--writers", "2", "--progress")
    frames = err.split("\r")[1:]
    ranges = file_ranges(path, 2)
    assert len(frames) == sum((part.lines + 1) // 2 for part in ranges) > 3  # batches of 2
    shown = [int(frame.split("] ")[1].split()[1]) for frame in frames]
    assert shown == sorted(shown) and shown[-1] == 9
    assert frames[-1].startswith("[" + "#" * 30 + "] 100% 9 prompts")


@pytest.mark.postgresql(POSTGRESQL_ONLY)
@pytest.mark.django_db(transaction=True)
def test_a_process_running_other_threads_imports_in_one_transaction(tmp_path, project):
    """Forking beside other threads could leave a lock one of them holds locked forever in
    the writer: the import then writes in one transaction instead."""
    stop = threading.Event()
    beside = threading.Thread(target=stop.wait, daemon=True)
    beside.start()
    try:
        assert staged_import.other_threads_running()
        records = sample_records(9)
        out, _ = run(project, write_jsonl(tmp_path / "p.jsonl", records), "--batch-size", "2")
    finally:
        stop.set()
        beside.join()
    assert "Imported 9 prompts" in out and "writers" not in out
    assert imported_content(project) == expected_content(records)


# The stage --------------------------------------------------------------------------------------


@staged
def test_a_stage_is_listed_nowhere_and_a_forgotten_one_is_dropped(tmp_path, project, make_user):
    staff = make_user("operator")
    staff.is_staff = True
    staff.save()
    stage = staged_import._stage_create(project)
    records = validate_records(parse_import_body(json.dumps(sample_records(3))))
    prompts_copy(project=stage, records=records)

    assert stage not in selectors.projects_for_user(user=staff)
    assert project in selectors.projects_for_user(user=staff)
    with pytest.raises(NotFound):
        selectors.project_for_user(user=staff, project_id=stage.pk)
    assert staged_import.stages_forgotten_drop() == 0  # a live import's stage is kept

    Project.objects.filter(pk=stage.pk).update(created_at=timezone.now() - timedelta(days=2))
    assert staged_import.stages_forgotten_drop() == 1
    assert stages_left() == 0
    assert not Prompt.objects.exists() and not Response.objects.exists()
    assert not PromptSearchText.objects.exists()
    assert Project.objects.filter(pk=project.pk).exists()


@pytest.mark.parametrize(
    ("cpus", "database_here", "writers"),
    [(2, True, 1), (2, False, 2), (8, True, 4), (16, False, 4), (1, True, 1), (None, False, 1)],
)
def test_the_default_writers_leave_a_core_to_each_writers_backend_on_this_machine(
    monkeypatch, cpus, database_here, writers
):
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(db, "on_this_machine", lambda: database_here)
    assert staged_import.default_writers() == writers


@pytest.mark.parametrize(
    ("host", "here"),
    [("127.0.0.1", True), ("localhost", True), ("", True), ("/var/run/postgresql", True),
     ("db.internal", False), ("10.0.0.5", False)],
)  # fmt: skip
def test_a_database_on_this_machine_is_told_by_its_host(monkeypatch, host, here):
    from django.db import connection

    monkeypatch.setitem(connection.settings_dict, "HOST", host)
    assert db.on_this_machine() is (here or connection.vendor == "sqlite")
