"""What the writing kinds' APIs share: the checked request body, the answer to a submission
(201 when new, 200 when the same one was stored already) and the view that streams a turn's
reply as server-sent events (`authoring.streaming`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from authoring.streaming import Event, sse_response
from core.api import ERROR_RESPONSES

View = TypeVar("View", bound=type[APIView])


def request_data(serializer_class: type[serializers.Serializer], request: Request) -> Any:
    """The body as the serializer cleaned it; bad input is a 400 naming the field."""
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


def submission_answer(payload: Any, *, created: bool) -> Response:
    """201 for a new submission; 200 when the same one was already stored."""
    return Response(payload, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class EventStreamAccepted(DefaultContentNegotiation):
    """An EventSource asks for `text/event-stream` only; the events are not a DRF rendering,
    and a refusal before them is answered as the usual JSON error."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        first = next(iter(renderers))
        return first, first.media_type


class TurnReplyStreamView(APIView):
    """A turn's reply as server-sent events: `delta` {text} per piece, then `done` {html} or
    `failed` {detail, html}. A subclass names the events with `reply_events`, whose checks
    run before the first event so that a refusal is a plain JSON error."""

    content_negotiation_class = EventStreamAccepted

    def reply_events(self, request: Request, **url: int) -> Iterable[Event]:
        """The turn's events for the signed-in rater; `url` holds the URL's ids."""
        raise NotImplementedError

    def get(self, request: Request, **url: int) -> StreamingHttpResponse:
        return sse_response(self.reply_events(request, **url))


def turn_stream_schema(
    *, conflict: OpenApiResponse, parameters: Sequence[OpenApiParameter] = ()
) -> Callable[[View], View]:
    """The OpenAPI description of a `TurnReplyStreamView` (its docstring says the rest)."""
    return extend_schema(
        parameters=list(parameters),
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR, description="The reply's events"
            ),
            409: conflict,
            **ERROR_RESPONSES,
        },
    )
