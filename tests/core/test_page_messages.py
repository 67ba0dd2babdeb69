"""`core.views.PageMessageMiddleware`: the pages keep Django's one-time messages; an API
request makes no message storage and its answer carries no message cookie."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from core.views import PageMessageMiddleware


def through_middleware(path: str, add_message: bool) -> tuple[HttpRequest, Any]:
    def view(request: HttpRequest) -> HttpResponse:
        if add_message:
            messages.success(request, "saved")
        return HttpResponse("ok")

    request = RequestFactory().get(path)
    SessionMiddleware(lambda request: HttpResponse()).process_request(request)
    response = PageMessageMiddleware(view)(request)
    return request, response


def test_a_page_request_stores_its_message_for_the_next_page():
    request, response = through_middleware("/projects/new/", add_message=True)

    assert isinstance(request._messages, FallbackStorage)  # type: ignore[attr-defined]
    assert "messages" in response.cookies


@pytest.mark.parametrize("path", ["/api/projects/1/next-task/", "/api/assignments/7/ranking/"])
def test_an_api_request_makes_no_message_storage(path):
    request, response = through_middleware(path, add_message=False)

    assert not hasattr(request, "_messages")
    assert "messages" not in response.cookies


def test_a_message_left_for_a_page_survives_api_calls_in_between(client, make_user):
    client.force_login(make_user("staff", is_staff=True))
    created = client.post("/projects/new/", {"name": "Messages", "overlap": 3})
    assert created.status_code == 302

    assert client.get("/api/projects/").status_code == 200
    page = client.get(created["Location"])

    assert "created. Import prompts next." in page.content.decode()
