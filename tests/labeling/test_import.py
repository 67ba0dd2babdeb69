from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from labeling import services
from labeling.importing import parse_import_body, validate_records
from labeling.models import Project, Prompt, Response
from labeling.services import prompts as prompt_services
from tests.helpers import sample_records

pytestmark = pytest.mark.django_db


def post_import(client, project, body: str, content_type="application/json"):
    return client.post(f"/api/projects/{project.pk}/prompts/", body, content_type=content_type)


def test_it_imports_a_json_list(api_for, lead, project):
    response = post_import(api_for(lead), project, json.dumps(sample_records(3)))
    assert response.status_code == 201, response.content
    assert response.json()["created"] == 3
    assert Prompt.objects.filter(project=project).count() == 3
    assert Response.objects.filter(prompt__project=project).count() == 9
    first = Prompt.objects.get(project=project, external_id="p0")
    assert first.messages == [{"role": "user", "content": "Question number 0: explain something."}]
    assert list(first.responses.values_list("model_name", flat=True)) == [
        "model-0",
        "model-1",
        "model-2",
    ]


def test_it_imports_json_lines_with_messages_and_gold(api_for, lead, project):
    lines = [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
            ],
            "responses": [
                {"external_id": "a", "text": "Hello"},
                {"external_id": "b", "text": "Yo"},
            ],
            "gold_ranking": [["a"], ["b"]],
        },
        {"prompt": "Second", "responses": ["one", "two", "three"], "metadata": {"topic": "x"}},
    ]
    body = "\n".join(json.dumps(line) for line in lines) + "\n"
    response = post_import(api_for(lead), project, body, "application/jsonl")
    assert response.status_code == 201, response.content
    gold = Prompt.objects.get(project=project, is_gold=True)
    ids = dict(gold.responses.values_list("external_id", "id"))
    assert gold.gold_ranking == [[ids["a"]], [ids["b"]]]
    assert Prompt.objects.get(metadata__topic="x").responses.count() == 3


def test_an_import_with_one_bad_line_imports_nothing_and_names_the_line(api_for, lead, project):
    records = sample_records(4)
    records[2]["responses"][1]["text"] = ""
    body = "\n".join(json.dumps(record) for record in records)
    response = post_import(api_for(lead), project, body, "application/jsonl")
    assert response.status_code == 400
    assert response.json()["detail"] == "line 3: responses[1].text: must be a non-empty string"
    assert response.json()["field"] == "responses[1].text"
    assert Prompt.objects.filter(project=project).count() == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda r: r.update(responses=[f"a{i}" for i in range(10)]),
            "line 2: responses: takes at most 9 responses, got 10",
        ),
        (lambda r: r.pop("prompt"), "line 2: prompt: give exactly one of"),
        (lambda r: r.update(colour="red"), "line 2: colour: unknown field"),
        (lambda r: r.update(external_id="p0"), "line 2: external_id: 'p0' repeats line 1"),
        (lambda r: r.update(gold_ranking=[["p1-r0"]]), "line 2: gold_ranking: must place every"),
        (
            lambda r: r.update(messages=[{"role": "bot", "content": "x"}]) or r.pop("prompt"),
            "line 2: messages[0].role: must be one of",
        ),
        (
            lambda r: r.update(responses=["a", 7]),
            "line 2: responses[1]: must be an object with text",
        ),
        (
            lambda r: r.update(responses=["a", {"text": "b", "colour": "red"}]),
            "line 2: responses[1].colour: unknown field",
        ),
        (
            lambda r: r.update(responses=[{"id": "x", "text": "a"}, {"id": "x", "text": "b"}]),
            "line 2: responses[1].external_id: 'x' is used twice",
        ),
        (
            lambda r: r.update(responses=["a", {"text": "b", "metadata": {"k": {"n": 2**70}}}]),
            "line 2: responses[1].metadata.k.n: is a number outside the 64-bit range",
        ),
        (
            lambda r: r.update(responses=["a", {"text": "b", "metadata": [1]}]),
            "line 2: responses[1].metadata: must be a JSON object",
        ),
    ],
)
def test_bad_records_are_refused_with_line_and_field(api_for, lead, project, change, message):
    records = sample_records(3)
    change(records[1])
    response = post_import(api_for(lead), project, json.dumps(records))
    assert response.status_code == 400
    assert response.json()["detail"].startswith(message), response.json()
    assert not Prompt.objects.filter(project=project).exists()


def test_invalid_json_line_is_named(api_for, lead, project):
    body = json.dumps(sample_records(1)[0]) + "\n{not json\n"
    response = post_import(api_for(lead), project, body, "application/jsonl")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("line 2: json: not valid JSON")


def test_existing_external_id_refuses_the_whole_import(api_for, lead, project):
    assert post_import(api_for(lead), project, json.dumps(sample_records(2))).status_code == 201
    again = sample_records(4, prefix="q") + sample_records(1)
    response = post_import(api_for(lead), project, json.dumps(again))
    assert response.status_code == 400
    assert response.json()["detail"] == "line 5: external_id: 'p0' already exists in this project"
    assert Prompt.objects.filter(project=project).count() == 2


def test_raters_cannot_import(api_for, rater, project):
    response = post_import(api_for(rater), project, json.dumps(sample_records(1)))
    assert response.status_code == 403
    assert not Prompt.objects.exists()


def test_import_command_reads_a_file(tmp_path, project):
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in sample_records(3)))
    call_command("import_prompts", str(project.pk), str(path))
    assert Prompt.objects.filter(project=project).count() == 3


def test_import_command_reports_the_bad_line_and_writes_nothing(tmp_path, project):
    records = sample_records(3)
    records[1]["responses"] = "nope"
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in records))
    with pytest.raises(CommandError, match="line 2: responses: must be a list"):
        call_command("import_prompts", str(project.pk), str(path))
    assert not Prompt.objects.exists()


def imported_content(project: Project) -> list[tuple]:
    """Everything an import stored, with response ids in gold rankings as positions."""
    content = []
    for prompt in Prompt.objects.filter(project=project).order_by("id"):
        responses = list(prompt.responses.order_by("position"))
        position = {response.pk: response.position for response in responses}
        gold = prompt.gold_ranking and [
            [position[i] for i in group] for group in prompt.gold_ranking
        ]
        content.append(
            (
                prompt.external_id, prompt.messages, prompt.metadata, gold, prompt.is_gold,
                prompt.is_complete, prompt.extra_raters, prompt.extra_reason,
                [(r.position, r.external_id, r.text, r.text_length, r.model_name, r.metadata)
                 for r in responses],
            )
        )  # fmt: skip
    return content


@pytest.mark.postgresql("compares COPY with the portable bulk_create")
def test_copy_and_the_portable_bulk_create_import_the_same_rows(lead):
    records = sample_records(7)
    records[1]["gold_ranking"] = [[2], [0, 1]]
    records[2]["metadata"] = {"topic": "ünïcode", "nested": {"n": [1, 2.5, None]}}
    records[3]["responses"][0] |= {"text": 'tab\t "quote" \n 😀', "metadata": {"k": "v"}}
    system, user = {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}
    records[4] = {"messages": [system, user], "responses": ["a", "b"]}
    validated = validate_records(parse_import_body(json.dumps(records)))
    copied = services.project_create(creator=lead, name="Copied")
    inserted = services.project_create(creator=lead, name="Inserted")

    copied_ids = prompt_services.prompts_copy(project=copied, records=validated)
    inserted_ids = prompt_services._prompts_bulk_create(project=inserted, records=validated)

    assert imported_content(copied) == imported_content(inserted)
    assert len(copied_ids) == len(inserted_ids) == 7
    assert [p.pk for p in Prompt.objects.filter(project=copied).order_by("id")] == copied_ids


def test_a_responses_stored_length_follows_its_text(api_for, lead, project):
    records = sample_records(2, responses=3)
    records[0]["responses"][1] = {"text": 'tab\t "quote" \n 😀 ünïcode'}
    records[1]["responses"][2] = {"text": "é"}
    assert post_import(api_for(lead), project, json.dumps(records)).status_code == 201
    responses = Response.objects.filter(prompt__project=project)

    assert sorted(responses.values_list("text_length", flat=True)) == sorted(
        len(text) for text in responses.values_list("text", flat=True)
    )
    assert 1 in responses.values_list("text_length", flat=True)
    edited = responses.get(text__contains="quote")
    Response.objects.filter(pk=edited.pk).update(text="😀 two")
    edited.refresh_from_db()
    assert edited.text_length == 5
    edited.text = "three"
    edited.save()
    edited.refresh_from_db()
    assert edited.text_length == 5
    edited.text = "four!!"
    edited.save()
    assert Response.objects.get(pk=edited.pk).text_length == 6
