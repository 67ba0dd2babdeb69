"""Hostile import bodies get a clear 400 naming the line and field, never a 500, and
nothing is half-written — through the API and the Manage page's upload alike."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from labeling.models import Prompt

pytestmark = pytest.mark.django_db


def record(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "external_id": "p1",
        "prompt": "Say hi",
        "responses": [{"text": "Hi!", "model": "m1"}, {"text": "Hello.", "model": "m2"}],
    }
    base.update(changes)
    return base


def post_import(api, project, body: bytes, content_type: str = "application/jsonl"):
    return api.post(f"/api/projects/{project.pk}/prompts/", body, content_type=content_type)


NUL = "\u0000"
HOSTILE_RECORDS = {
    "prompt": record(prompt=f"Say{NUL}hi"),
    "external_id": record(external_id=f"p{NUL}1"),
    "responses[0].text": record(responses=[{"text": f"Hi{NUL}"}, {"text": "Hello."}]),
    "responses[1].model": record(responses=[{"text": "Hi"}, {"text": "Yo", "model": f"m{NUL}"}]),
    "metadata key": record(metadata={f"k{NUL}": 1}),
    "metadata.note": record(metadata={"note": f"a{NUL}b"}),
    "messages[0].content": {
        "messages": [{"role": "user", "content": f"x{NUL}"}],
        "responses": ["a", "b"],
    },
}


@pytest.mark.parametrize("field", sorted(HOSTILE_RECORDS))
def test_nul_anywhere_is_refused_naming_line_and_field(api_for, lead, project, field):
    body = json.dumps(record(external_id="ok")) + "\n" + json.dumps(HOSTILE_RECORDS[field])
    response = post_import(api_for(lead), project, body.encode())
    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["code"] == "invalid"
    assert payload["detail"].startswith("line 2: ")
    assert field.split(" ")[0].split(".")[0] in payload["field"]
    assert not Prompt.objects.filter(project=project).exists()


def test_empty_body_is_refused(api_for, lead, project):
    response = post_import(api_for(lead), project, b"", content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": "the import is empty", "code": "invalid", "field": "body"}


def test_invalid_utf8_names_the_line(api_for, lead, project):
    body = json.dumps(record()).encode() + b"\n" + b'{"prompt": "caf\xe9"}\n'
    response = post_import(api_for(lead), project, body)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("line 2: not valid UTF-8")
    assert not Prompt.objects.exists()


def test_integers_beyond_64_bits_in_metadata_are_refused(api_for, lead, project):
    body = '{"prompt": "Hi", "responses": ["a", "b"], "metadata": {"n": 123456789012345678901234}}'
    response = post_import(api_for(lead), project, body.encode())
    assert response.status_code == 400
    assert response.json()["field"] == "metadata.n"


def test_deeply_nested_metadata_is_refused(api_for, lead, project):
    nested: object = "leaf"
    for _ in range(40):
        nested = {"a": nested}
    body = json.dumps(record(metadata=nested)).encode()
    response = post_import(api_for(lead), project, body)
    assert response.status_code == 400
    assert "nests deeper" in response.json()["detail"]


def test_nesting_beyond_the_parser_limit_is_a_400(api_for, lead, project):
    body = b'{"prompt": "Hi", "responses": ["a", "b"], "metadata": ' + b"[" * 5000 + b"]" * 5000
    response = post_import(api_for(lead), project, body + b"}")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("line 1: json: not valid JSON")


def test_ordinary_metadata_still_imports(api_for, lead, project):
    body = json.dumps(record(metadata={"n": 2**62, "x": 1.5, "tags": ["a", {"b": None}]}))
    response = post_import(api_for(lead), project, body.encode())
    assert response.status_code == 201, response.content
    stored = Prompt.objects.get(project=project)
    assert stored.metadata == {"n": 2**62, "x": 1.5, "tags": ["a", {"b": None}]}


def test_html_upload_with_nul_shows_the_error_and_imports_nothing(lead, project):
    client = Client()
    client.force_login(lead)
    upload = SimpleUploadedFile(
        "prompts.jsonl", json.dumps(HOSTILE_RECORDS["prompt"]).encode(), "application/jsonl"
    )
    response = client.post(
        f"/projects/{project.pk}/import/", {"file": upload}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400
    assert "NUL character" in response.content.decode()
    assert not Prompt.objects.exists()


def test_html_upload_with_invalid_utf8_shows_the_error(lead, project):
    client = Client()
    client.force_login(lead)
    upload = SimpleUploadedFile("prompts.jsonl", b"\xff\xfe garbage", "application/jsonl")
    response = client.post(
        f"/projects/{project.pk}/import/", {"file": upload}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400
    assert "not valid UTF-8" in response.content.decode()


def test_a_body_past_the_import_limit_is_a_413_and_imports_nothing(
    api_for, lead, project, settings
):
    body = b"".join(json.dumps(record(external_id=f"p{n}")).encode() + b"\n" for n in range(30))
    settings.IMPORT_MAX_BYTES = len(body) - 1
    response = post_import(api_for(lead), project, body)
    assert response.status_code == 413
    assert response.json()["detail"].startswith(
        f"the import is larger than the limit of {len(body) - 1} bytes"
    )
    assert not Prompt.objects.exists()
    settings.IMPORT_MAX_BYTES = len(body)  # at the limit: imported
    assert post_import(api_for(lead), project, body).status_code == 201
    assert Prompt.objects.count() == 30


def test_an_upload_past_the_import_limit_is_refused_on_the_page(lead, project, settings):
    settings.IMPORT_MAX_BYTES = 2 * 2**20
    client = Client()
    client.force_login(lead)
    upload = SimpleUploadedFile("prompts.jsonl", b" " * (2 * 2**20 + 1), "application/jsonl")
    response = client.post(
        f"/projects/{project.pk}/import/", {"file": upload}, HTTP_HX_REQUEST="true"
    )
    assert "larger than 2 MB" in response.content.decode()
    assert not Prompt.objects.exists()
