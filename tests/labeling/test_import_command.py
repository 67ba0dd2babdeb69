"""`import_prompts`: a JSON Lines file streamed in batches inside one transaction (all or
nothing, as over the API), with a progress bar on a terminal and none otherwise."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from core.cli import main as ranklab_main
from labeling import importing
from labeling.models import AuditAction, AuditEvent, Prompt, Response
from labeling.services import prompts as prompt_services
from tests.helpers import sample_records
from tests.labeling.test_import import imported_content
from tests.labeling.test_import_batches import expected_content, mixed_records

pytestmark = pytest.mark.django_db


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def run(project, path: Path, *options: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_prompts", str(project.pk), str(path), *options, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_a_file_of_several_batches_is_imported_whole(tmp_path, project):
    records = mixed_records(8) + sample_records(3, prefix="q")
    out, err = run(project, write_jsonl(tmp_path / "p.jsonl", records), "--batch-size", "3")
    assert "Imported 11 prompts (38 responses)" in out
    assert err == ""  # not a terminal: no progress bar
    assert imported_content(project) == expected_content(records)
    assert Response.objects.filter(prompt__project=project).count() == 38
    [event] = AuditEvent.objects.filter(project=project, action=AuditAction.PROMPTS_IMPORT)
    first = Prompt.objects.filter(project=project).order_by("id").first()
    assert event.changes == {"created": 11, "first_id": first.pk}


def test_a_bad_line_in_the_last_batch_imports_nothing(tmp_path, project):
    records = sample_records(10)
    records[9]["responses"][2]["model"] = ["m"]
    path = write_jsonl(tmp_path / "p.jsonl", records)
    with pytest.raises(CommandError, match=r"line 10: responses\[2\]\.model: must be a string"):
        run(project, path, "--batch-size", "3")
    assert not Prompt.objects.filter(project=project).exists()
    assert not AuditEvent.objects.filter(action=AuditAction.PROMPTS_IMPORT).exists()


def test_invalid_json_in_a_late_batch_names_the_line(tmp_path, project):
    path = tmp_path / "p.jsonl"
    lines = [json.dumps(record) for record in sample_records(6)]
    lines.insert(5, "")  # blank lines are skipped but still counted
    path.write_text("\n".join([*lines, "{oops"]) + "\n")
    with pytest.raises(CommandError, match="line 8: json: not valid JSON"):
        run(project, path, "--batch-size", "2")
    assert not Prompt.objects.exists()


def test_an_external_id_repeating_an_earlier_batch_names_both_lines(tmp_path, project):
    records = sample_records(7)
    records[5]["external_id"] = "p1"
    path = write_jsonl(tmp_path / "p.jsonl", records)
    with pytest.raises(CommandError, match="line 6: external_id: 'p1' repeats line 2"):
        run(project, path, "--batch-size", "2")
    assert not Prompt.objects.exists()


def test_an_external_id_already_in_the_project_is_named_in_a_late_batch(tmp_path, project):
    run(project, write_jsonl(tmp_path / "first.jsonl", sample_records(2, prefix="old")))
    records = sample_records(6) + sample_records(2, prefix="old")
    path = write_jsonl(tmp_path / "p.jsonl", records)
    with pytest.raises(CommandError, match="line 7: external_id: 'old0' already exists"):
        run(project, path, "--batch-size", "3")
    assert Prompt.objects.filter(project=project).count() == 2


def test_the_progress_bar_shows_on_request(tmp_path, project):
    path = write_jsonl(tmp_path / "p.jsonl", sample_records(9))
    _, err = run(project, path, "--batch-size", "4", "--progress")
    frames = err.split("\r")[1:]
    assert len(frames) == 3  # one per batch: 4 + 4 + 1
    assert "4 prompts" in frames[0] and "8 prompts" in frames[1]
    assert frames[-1].startswith("[" + "#" * 30 + "] 100% 9 prompts")
    assert err.endswith("\n")


def test_a_terminal_gets_the_bar_and_a_pipe_does_not(tmp_path, project, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    path = write_jsonl(tmp_path / "p.jsonl", sample_records(2))
    terminal = Terminal()
    call_command(
        "import_prompts", str(project.pk), str(path), stderr=terminal, stdout=io.StringIO()
    )
    assert "100% 2 prompts" in terminal.getvalue()
    path = write_jsonl(tmp_path / "q.jsonl", sample_records(2, prefix="q"))
    _, err = run(project, path, "--no-progress")
    assert err == ""


def test_a_json_list_file_is_read_whole(tmp_path, project):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(sample_records(5)))
    out, _ = run(project, path, "--batch-size", "2")
    assert "Imported 5 prompts (15 responses)" in out
    assert Prompt.objects.filter(project=project).count() == 5


def test_ranklab_manage_reaches_the_command(tmp_path, project, capsys, monkeypatch):
    # A command line run closes its connections at the end; the test's must stay open.
    monkeypatch.setattr("django.db.connections.close_all", lambda: None)
    path = write_jsonl(tmp_path / "p.jsonl", sample_records(2))
    assert ranklab_main(["manage", "import_prompts", str(project.pk), str(path)]) == 0
    assert "Imported 2 prompts" in capsys.readouterr().out
    assert Prompt.objects.filter(project=project).count() == 2


def test_the_file_is_read_only_a_few_batches_ahead_of_the_writes(tmp_path, project, monkeypatch):
    """Memory stays flat: while a batch is written, the reader holds at most the batches
    queued ahead of it (two) and the one waiting to join them, never the whole file."""
    read_so_far: list[int] = [0]
    written: list[tuple[int, int]] = []
    write = prompt_services._prompts_write
    read = importing.read_json_lines

    def counting_read(stream):
        for line, value in read(stream):
            read_so_far[0] = line
            yield line, value

    def recording_write(*, project, records):
        written.append((records[-1].line, read_so_far[0]))
        return write(project=project, records=records)

    monkeypatch.setattr(prompt_services, "read_json_lines", counting_read)
    monkeypatch.setattr(prompt_services, "_prompts_write", recording_write)
    run(project, write_jsonl(tmp_path / "p.jsonl", sample_records(30)), "--batch-size", "3")
    assert Prompt.objects.filter(project=project).count() == 30
    assert len(written) == 10
    assert all(last <= read_up_to <= last + 3 * 3 for last, read_up_to in written)


def test_refusals_before_reading(tmp_path, project):
    with pytest.raises(CommandError, match="project 999999 does not exist"):
        call_command("import_prompts", "999999", str(tmp_path / "missing.jsonl"))
    with pytest.raises(CommandError, match="is not a file"):
        call_command("import_prompts", str(project.pk), str(tmp_path / "missing.jsonl"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(CommandError, match="the import has no records"):
        call_command("import_prompts", str(project.pk), str(empty))
