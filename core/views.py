"""Error pages: under /api/ every error is the API's JSON shape, elsewhere Django's pages;
and the pages' one-time messages, which the API (JSON only) never shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import LoginView
from django.contrib.messages.middleware import MessageMiddleware
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from core.throttles import sign_in_wait_seconds

API_PREFIX = "/api/"


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(
            {"detail": f"No API endpoint at {request.path}.", "code": "not_found"}, status=404
        )
    return defaults.page_not_found(request, exception)


class ApiNotFoundMiddleware:
    """A URL under /api/ that matches nothing answers the API's JSON 404 with DEBUG on too:
    Django then answers its technical HTML page instead of calling ``handler404``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code == 404
            and _is_api(request)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return page_not_found(request, Http404())
        return response


class PageMessageMiddleware(MessageMiddleware):
    """Django's messages for the pages only: an API request skips making their storage
    (a cookie signer and a session store), which every rater call paid for nothing."""

    def process_request(self, request: HttpRequest) -> None:
        if not _is_api(request):
            super().process_request(request)

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if _is_api(request):
            return response
        return super().process_response(request, response)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        # Nothing about the failure itself: details stay in the server's log.
        return JsonResponse(
            {"detail": "Internal server error; it has been logged.", "code": "server_error"},
            status=500,
        )
    return defaults.server_error(request)


class ThrottledLoginView(LoginView):
    """The sign-in form, throttled like the token and sign-up endpoints: too many attempts
    from one address or on one username answer 429 before any password is hashed."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        wait = sign_in_wait_seconds(request)
        if wait is not None:
            response = self.render_to_response(
                self.get_context_data(
                    form=self.get_form(),
                    throttled=f"Too many sign-in attempts; try again in {int(wait) + 1} s.",
                )
            )
            response.status_code = 429
            response["Retry-After"] = str(int(wait) + 1)
            return response
        return super().post(request, *args, **kwargs)
