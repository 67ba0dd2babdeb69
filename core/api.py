"""Map the service error hierarchy and DRF errors to one JSON shape: detail, code, field."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from core.errors import RanklabError


class ErrorSerializer(serializers.Serializer):
    """The one error shape of every API response that is not a success."""

    detail = serializers.CharField(help_text="What went wrong, naming the line or field.")
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `invalid`.")
    field = serializers.CharField(required=False, help_text="The field at fault, if one is.")


ERROR_RESPONSES = {
    400: OpenApiResponse(ErrorSerializer, description="Bad input, naming the field"),
    403: OpenApiResponse(ErrorSerializer, description="Not allowed for your role"),
    404: OpenApiResponse(ErrorSerializer, description="Not found or not visible to you"),
}

NOT_QUEUED = OpenApiResponse(
    ErrorSerializer, description="The task queue is unavailable: the job was marked failed"
)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RanklabError):
        return Response(exc.as_dict(), status=exc.status_code)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_field_error(exc.detail)
        body: dict[str, Any] = {
            "detail": f"{field}: {message}" if field else message,
            "code": "invalid",
        }
        if field:
            body["field"] = field
        body["errors"] = exc.detail
        response.data = body
        response.status_code = status.HTTP_400_BAD_REQUEST
    elif isinstance(exc, exceptions.APIException):
        response.data = {"detail": str(exc.detail), "code": _code_of(exc)}
    elif isinstance(response.data, dict) and "detail" in response.data:
        # Django's Http404 and PermissionDenied, which DRF turns into its own responses.
        response.data = {
            "detail": str(response.data["detail"]),
            "code": "not_found" if response.status_code == 404 else "forbidden",
        }
    return response


def _code_of(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else exc.default_code


def _first_field_error(detail: Any, prefix: str = "") -> tuple[str, str]:
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else f"{prefix}.{key}" if prefix else str(key)
            return _first_field_error(value, name)
    if isinstance(detail, list) and detail:
        for index, item in enumerate(detail):
            if item:
                if isinstance(item, dict | list) and not isinstance(item, str):
                    return _first_field_error(item, f"{prefix}[{index}]")
                return prefix, str(item)
    return prefix, str(detail)


_DATETIME = serializers.DateTimeField()


def api_datetime(value: datetime | None) -> str | None:
    """A datetime as every API answer writes it (the serializers' DateTimeField format), for
    the hot paths that build their answer without a serializer."""
    return None if value is None else _DATETIME.to_representation(value)
