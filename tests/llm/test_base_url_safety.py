"""Endpoint base URLs: http(s) only, no credentials, no link-local / cloud-metadata hosts
(unless LLM_ALLOW_LINK_LOCAL), private and loopback hosts allowed — checked on create,
update, the browser form, and again when a process first calls the endpoint."""

from __future__ import annotations

import socket

import pytest
from django.test import Client

from llm.addresses import base_url_refusal
from llm.client import CallFailed, EndpointConfig, chat
from llm.models import ModelEndpoint
from tests.llm.helpers import SECRET, make_endpoint

pytestmark = pytest.mark.django_db

REFUSED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.1.7:8000/v1",
    "http://[fd00:ec2::254]/v1",
    "http://[fe80::1]:8000/v1",
    "http://[::ffff:169.254.169.254]/v1",
    "http://metadata.google.internal/computeMetadata/v1",
    "http://user:secret@10.0.0.5:8000/v1",
    "http://:secret@10.0.0.5/v1",
    "ftp://10.0.0.5/v1",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/",
]
ALLOWED = [
    "http://127.0.0.1:8000/v1",
    "http://localhost:11434/v1",
    "http://10.1.2.3:8000/v1",
    "http://192.168.1.20:8000/v1",
    "http://172.16.0.9/v1",
    "http://[::1]:8000/v1",
    "https://api.openai.com/v1",
]


@pytest.mark.parametrize("url", REFUSED)
def test_unsafe_urls_are_a_400_naming_base_url(api_for, lead, project, url):
    response = api_for(lead).post(
        f"/api/projects/{project.pk}/endpoints/",
        {"name": "x", "base_url": url, "model": "m"},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "base_url"
    assert "secret" not in response.content.decode()
    assert not ModelEndpoint.objects.exists()


@pytest.mark.parametrize("url", ALLOWED)
def test_private_and_loopback_hosts_are_allowed(url, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", _resolves_to("10.0.0.1"))
    assert base_url_refusal(url) is None


def test_a_name_resolving_to_a_metadata_address_is_refused(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", _resolves_to("169.254.169.254"))
    assert "link-local" in (base_url_refusal("http://innocent.example/v1") or "")
    assert base_url_refusal("http://innocent.example/v1", resolve=False) is None


def test_the_setting_allows_link_local(settings):
    settings.LLM_ALLOW_LINK_LOCAL = True
    assert base_url_refusal("http://169.254.169.254/v1") is None
    assert base_url_refusal("http://u:p@169.254.169.254/v1") is not None  # never credentials


def test_patch_and_the_service_refuse_too(api_for, lead, project, fake_llm):
    endpoint = make_endpoint(project, fake_llm.base_url)
    response = api_for(lead).patch(
        f"/api/endpoints/{endpoint.pk}/", {"base_url": "http://169.254.169.254/v1"}, format="json"
    )
    assert response.status_code == 400 and response.json()["field"] == "base_url"
    with pytest.raises(Exception) as refused:
        make_endpoint(project, "http://169.254.169.254/v1", name="other")
    assert getattr(refused.value, "field", None) == "base_url"
    endpoint.refresh_from_db()
    assert endpoint.base_url == fake_llm.base_url


def test_the_browser_form_refuses_with_the_reason(lead, project):
    client = Client()
    client.force_login(lead)
    response = client.post(
        f"/models/{project.pk}/endpoints/",
        {"name": "x", "base_url": "http://169.254.169.254/v1", "model": "m", "api_key": SECRET},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "base_url" in page and "metadata" in page and SECRET not in page
    assert not ModelEndpoint.objects.exists()


def test_the_client_refuses_a_stored_unsafe_url_before_any_call(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", _resolves_to("169.254.169.254"))
    config = EndpointConfig(base_url="http://rebound.example/v1", model="m", api_key=SECRET)
    with pytest.raises(CallFailed) as failed:
        chat(config, [{"role": "user", "content": "hi"}])
    assert "base_url refused" in failed.value.reason and SECRET not in failed.value.reason


def _resolves_to(address: str):
    def fake(host, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 0))]

    return fake
