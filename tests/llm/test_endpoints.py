"""Model endpoints through the API: write-only encrypted keys, validation, roles, the test
call against a real OpenAI-compatible server."""

from __future__ import annotations

import logging

import pytest

from llm.crypto import secret_decrypt
from llm.models import ModelEndpoint
from tests.llm.helpers import SECRET, make_endpoint

pytestmark = pytest.mark.django_db


def endpoint_body(base_url: str, **extra):
    return {"name": "vllm-a", "base_url": base_url, "model": "fake-a", "api_key": SECRET, **extra}


def test_the_key_is_write_only_and_encrypted_at_rest(api_for, lead, project, fake_llm):
    api = api_for(lead)
    created = api.post(
        f"/api/projects/{project.pk}/endpoints/", endpoint_body(fake_llm.base_url), format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["has_api_key"] is True
    assert "api_key" not in created.json()
    stored = ModelEndpoint.objects.get(pk=created.json()["id"])
    assert SECRET not in stored.api_key_encrypted and stored.api_key_encrypted
    assert secret_decrypt(stored.api_key_encrypted) == SECRET
    bodies = [
        created.content,
        api.get(f"/api/projects/{project.pk}/endpoints/").content,
        api.get(f"/api/endpoints/{stored.pk}/").content,
        api.patch(f"/api/endpoints/{stored.pk}/", {"temperature": 0.1}, format="json").content,
        api.get("/api/schema/").content,
    ]
    for body in bodies:
        assert SECRET.encode() not in body
    stored.refresh_from_db()
    assert stored.temperature == 0.1 and secret_decrypt(stored.api_key_encrypted) == SECRET


def test_a_patch_replaces_or_removes_the_key(api_for, lead, project, fake_llm):
    endpoint = make_endpoint(project, fake_llm.base_url)
    api = api_for(lead)
    assert api.patch(f"/api/endpoints/{endpoint.pk}/", {"api_key": "sk-new"}, format="json").json()[
        "has_api_key"
    ]
    endpoint.refresh_from_db()
    assert secret_decrypt(endpoint.api_key_encrypted) == "sk-new"
    assert not api.patch(f"/api/endpoints/{endpoint.pk}/", {"api_key": ""}, format="json").json()[
        "has_api_key"
    ]
    endpoint.refresh_from_db()
    assert endpoint.api_key_encrypted == ""


def test_the_key_depends_on_the_environment_key(settings, project, fake_llm):
    endpoint = make_endpoint(project, fake_llm.base_url)
    settings.RANKLAB_SECRETS_KEY = "another-key"
    from llm.crypto import SecretUnreadable

    with pytest.raises(SecretUnreadable) as raised:
        secret_decrypt(endpoint.api_key_encrypted)
    assert SECRET not in str(raised.value)
    # Rotation: the new key first, the old one (here the SECRET_KEY-derived) still reads.
    settings.RANKLAB_SECRETS_KEY = f"another-key,{settings.SECRET_KEY}"
    assert secret_decrypt(endpoint.api_key_encrypted) == SECRET


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"base_url": "ftp://example.com"}, "base_url"),
        ({"base_url": "http://user:pw@example.com/v1"}, "base_url"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 65}, "concurrency"),
        ({"temperature": 3}, "temperature"),
        ({"model": ""}, "model"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api_for, lead, project, change, field):
    body = {**endpoint_body("http://127.0.0.1:9/v1"), **change}
    response = api_for(lead).post(f"/api/projects/{project.pk}/endpoints/", body, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_names_are_unique_per_project(api_for, lead, project):
    api = api_for(lead)
    url = f"/api/projects/{project.pk}/endpoints/"
    assert api.post(url, endpoint_body("http://127.0.0.1:9/v1"), format="json").status_code == 201
    again = api.post(url, endpoint_body("http://127.0.0.1:9/v1"), format="json")
    assert again.status_code == 400 and again.json()["field"] == "name"


def test_raters_and_outsiders_cannot_see_endpoints(
    api_for, project, rater, outsider, engineer, fake_llm
):
    endpoint = make_endpoint(project, fake_llm.base_url)
    assert api_for(rater).get(f"/api/projects/{project.pk}/endpoints/").status_code == 403
    assert api_for(rater).get(f"/api/endpoints/{endpoint.pk}/").status_code == 403
    assert api_for(outsider).get(f"/api/endpoints/{endpoint.pk}/").status_code == 404
    assert api_for(outsider).post(f"/api/endpoints/{endpoint.pk}/test/").status_code == 404
    assert api_for(engineer).get(f"/api/endpoints/{endpoint.pk}/").status_code == 200


def test_the_test_call_reports_latency_and_sends_the_key(api_for, lead, project, fake_llm):
    endpoint = make_endpoint(project, fake_llm.base_url)
    fake_llm.state.latency = 0.05
    response = api_for(lead).post(f"/api/endpoints/{endpoint.pk}/test/")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["model"] == "fake-a"
    assert body["latency_ms"] >= 50
    assert fake_llm.state.authorizations == [f"Bearer {SECRET}"]


def test_a_failing_test_call_reports_the_error_without_the_key(
    api_for, lead, project, fake_llm, caplog
):
    caplog.set_level(logging.DEBUG)
    endpoint = make_endpoint(project, fake_llm.base_url, max_retries=1)
    fake_llm.state.faults.extend(["500", "500"])
    response = api_for(lead).post(f"/api/endpoints/{endpoint.pk}/test/")
    assert response.status_code == 200
    assert response.json()["ok"] is False
    assert response.json()["error"].startswith("HTTP 500")
    assert fake_llm.state.requests == 2  # one retry
    assert SECRET not in response.content.decode()
    assert SECRET not in caplog.text
    assert all(SECRET not in record.getMessage() for record in caplog.records)


def test_an_unreachable_endpoint_is_reported(api_for, lead, project):
    endpoint = make_endpoint(project, "http://127.0.0.1:9/v1", max_retries=0, timeout_seconds=2)
    body = api_for(lead).post(f"/api/endpoints/{endpoint.pk}/test/").json()
    assert body["ok"] is False and "connection" in body["error"].lower()


def test_delete_removes_the_endpoint(api_for, lead, project, fake_llm):
    endpoint = make_endpoint(project, fake_llm.base_url)
    assert api_for(lead).delete(f"/api/endpoints/{endpoint.pk}/").status_code == 204
    assert not ModelEndpoint.objects.filter(pk=endpoint.pk).exists()
