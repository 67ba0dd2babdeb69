"""Error pages: under /api/ every error is the API's JSON shape, elsewhere Django's pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

API_PREFIX = "/api/"


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(
            {"detail": f"No API endpoint at {request.path}.", "code": "not_found"}, status=404
        )
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        # Nothing about the failure itself: details stay in the server's log.
        return JsonResponse(
            {"detail": "Internal server error; it has been logged.", "code": "server_error"},
            status=500,
        )
    return defaults.server_error(request)
