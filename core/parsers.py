"""The API's JSON parser: orjson, with a size limit and a nesting limit answered as 400/413
naming the limit, instead of the standard library's RecursionError (a 500) on deep input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import BaseParser


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


class JSONParser(BaseParser):
    """`application/json` bodies up to `API_JSON_MAX_BYTES`; orjson refuses nesting deeper
    than 1024 levels, which surfaces as a 400 like any other malformed JSON."""

    media_type = "application/json"

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        limit = settings.API_JSON_MAX_BYTES
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise PayloadTooLarge(f"the JSON body is larger than the limit of {limit} bytes")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise exceptions.ParseError(f"JSON parse error: {error}") from error
