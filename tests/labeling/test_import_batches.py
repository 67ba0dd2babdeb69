"""Imports written batch by batch: COPY on PostgreSQL, bulk_create on SQLite, one
transaction either way — a refusal in a late batch leaves nothing, and names the line."""

from __future__ import annotations

import json

import pytest

from core import db
from labeling import services
from labeling.models import AuditAction, AuditEvent, Prompt
from labeling.services import prompts as prompt_services
from tests.helpers import sample_records
from tests.labeling.test_import import imported_content, post_import

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(prompt_services, "IMPORT_BATCH_SIZE", 3)


@pytest.fixture
def batches_written(monkeypatch) -> list[int]:
    """The size of each batch the import writes, in order."""
    written: list[int] = []
    write = prompt_services._prompts_write

    def recording(**kwargs):
        written.append(len(kwargs["records"]))
        return write(**kwargs)

    monkeypatch.setattr(prompt_services, "_prompts_write", recording)
    return written


def mixed_records(count: int = 8) -> list[dict]:
    records = sample_records(count)
    records[1]["gold_ranking"] = [[2], [0, 1]]
    records[4] = {
        "external_id": "p4",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "responses": ["a", "b"],
        "metadata": {"topic": "ünïcode", "nested": {"n": [1, 2.5, None]}},
    }
    records[6]["responses"] = [{"text": f"r{slot}", "model": "m"} for slot in range(9)]
    records[7]["gold_ranking"] = [["p7-r1", "p7-r0"], ["p7-r2"]]
    return records


def expected_content(records: list[dict]) -> list[tuple]:
    """What an import of `records` must store, worked out from the records alone."""
    rows: list[tuple] = []
    for record in records:
        messages = record.get("messages") or [{"role": "user", "content": record["prompt"]}]
        responses = [{"text": r} if isinstance(r, str) else r for r in record["responses"]]
        ids = [r.get("external_id", "") for r in responses]
        gold = record.get("gold_ranking") and [
            [ids.index(m) if isinstance(m, str) else m for m in group]
            for group in record["gold_ranking"]
        ]
        rows.append(
            (
                record["external_id"], messages, record.get("metadata", {}), gold, bool(gold),
                False, 0, "",
                [(position, r.get("external_id", ""), r["text"], len(r["text"]), r.get("model", ""),
                  {})
                 for position, r in enumerate(responses)],
            )
        )  # fmt: skip
    return rows


def test_an_import_of_several_batches_stores_every_record(small_batches, lead, project):
    records = mixed_records()
    created = services.prompts_import(project=project, raw=json.dumps(records), by=lead)

    assert imported_content(project) == expected_content(records)
    prompts = list(Prompt.objects.filter(project=project).order_by("id"))
    assert [p.pk for p in prompts] == created
    assert [p.n_responses for p in prompts] == [len(r["responses"]) for r in records]
    event = AuditEvent.objects.get(project=project, action=AuditAction.PROMPTS_IMPORT)
    assert event.changes == {"created": 8, "first_id": created[0]}
    assert event.actor == lead


def test_each_database_takes_its_own_write_path(small_batches, monkeypatch, project):
    calls: list[str] = []

    def recording(name: str):
        original = getattr(prompt_services, name)

        def write(**kwargs):
            calls.append(name)
            return original(**kwargs)

        return write

    for name in ("prompts_copy", "_prompts_bulk_create"):
        monkeypatch.setattr(prompt_services, name, recording(name))
    services.prompts_import(project=project, raw=json.dumps(sample_records(7)))
    expected = "prompts_copy" if db.is_postgresql() else "_prompts_bulk_create"
    assert calls == [expected] * 3  # 3 + 3 + 1 records


def test_the_apis_first_batch_is_smaller_so_the_database_starts_early(
    monkeypatch, batches_written, project
):
    monkeypatch.setattr(prompt_services, "IMPORT_BATCH_SIZE", 3)
    monkeypatch.setattr(prompt_services, "FIRST_BATCH_SIZE", 2)
    records = mixed_records()
    created = services.prompts_import(project=project, raw=json.dumps(records))
    assert batches_written == [2, 3, 3]
    assert len(created) == 8
    assert imported_content(project) == expected_content(records)


def test_a_bad_line_late_in_a_body_is_decoded_after_earlier_batches_and_rolls_them_back(
    small_batches, batches_written, api_for, lead, project
):
    """The body is decoded as it is validated: the writes start before the bad line is
    reached, and the bad line still leaves nothing behind."""
    lines = [json.dumps(record) for record in sample_records(8)] + ['{"messages": [']
    response = post_import(api_for(lead), project, "\n".join(lines), "application/jsonl")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("line 9: json: not valid JSON")
    # Batches went to the database before line 9 was reached.
    assert batches_written and sum(batches_written) < 9
    assert not Prompt.objects.filter(project=project).exists()


def test_an_existing_external_id_in_a_late_batch_rolls_back_the_earlier_ones(
    small_batches, api_for, lead, project
):
    services.prompts_import(project=project, raw=json.dumps(sample_records(1, prefix="old")))
    records = sample_records(8) + sample_records(1, prefix="old")
    response = post_import(api_for(lead), project, json.dumps(records))
    assert response.status_code == 400
    assert response.json() == {
        "detail": "line 9: external_id: 'old0' already exists in this project",
        "code": "invalid",
        "field": "external_id",
    }
    assert list(Prompt.objects.filter(project=project).values_list("external_id", flat=True)) == [
        "old0"
    ]
    assert (
        AuditEvent.objects.filter(project=project, action=AuditAction.PROMPTS_IMPORT).count() == 1
    )


def test_a_failed_import_leaves_the_project_importable(small_batches, api_for, lead, project):
    records = sample_records(5)
    records[4]["responses"][0]["text"] = ""
    assert post_import(api_for(lead), project, json.dumps(records)).status_code == 400
    records[4]["responses"][0]["text"] = "fixed"
    response = post_import(api_for(lead), project, json.dumps(records))
    assert response.status_code == 201, response.content
    assert imported_content(project) == expected_content(records)


def test_json_lines_split_only_on_newlines(api_for, lead, project):
    """U+2028 and a bare carriage return are legal inside a JSON string."""
    record = sample_records(1)[0]
    record["prompt"] = "first\u2028second\rthird"
    body = json.dumps(record, ensure_ascii=False) + "\r\n"
    response = post_import(api_for(lead), project, body, "application/jsonl")
    assert response.status_code == 201, response.content
    assert Prompt.objects.get(project=project).messages[0]["content"] == record["prompt"]
