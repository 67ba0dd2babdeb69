"""REST endpoints of the prompt browser: the list (GET on the project's prompts, whose POST
is the import), one prompt (GET, and PATCH while nobody ranked it), bulk actions."""

from __future__ import annotations

from urllib.parse import urlencode

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ERROR_RESPONSES, ErrorSerializer
from core.auth import signed_in_user
from core.errors import InvalidInput
from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.api.views import PromptImportView
from labeling.models import Project
from rankings.prompts.actions import prompts_bulk_action
from rankings.prompts.browse import browse_prompts
from rankings.prompts.detail import prompt_detail, prompt_for_reader
from rankings.prompts.query import (
    MAX_PAGE_SIZE,
    ORDERINGS,
    STATES,
    browse_query_parse,
)
from rankings.prompts.serializers import (
    BulkActionSerializer,
    BulkResultSerializer,
    PromptDetailSerializer,
    PromptEditSerializer,
    PromptPageSerializer,
)

CONFLICT = {
    409: OpenApiResponse(
        ErrorSerializer, description="The prompt has rankings or is gold: it can't change"
    )
}

BROWSE_PARAMETERS = [
    OpenApiParameter("state", str, enum=list(STATES), description="Prompts in this state."),
    OpenApiParameter("q", str, description="Words the prompt's text contains (any case)."),
    OpenApiParameter("model", str, description="Prompts with a response from this model."),
    OpenApiParameter(
        "ordering",
        str,
        enum=list(ORDERINGS),
        description="newest (default), oldest, agreement (lowest first), -agreement, "
        "most_skipped. Agreement orders list only prompts the latest run gave an agreement.",
    ),
    OpenApiParameter("agreement_min", float, description="0 to 1, in the latest finished run."),
    OpenApiParameter("agreement_max", float, description="0 to 1, in the latest finished run."),
    OpenApiParameter(
        "flagged",
        bool,
        description="true: ranked by a rater with an open quality flag; false: by none.",
    ),
    OpenApiParameter("cursor", str, description="From the previous page's `next`."),
    OpenApiParameter("page_size", int, description=f"1 to {MAX_PAGE_SIZE}, default 50."),
]


def _data_project(request: Request, project_id: int) -> Project:
    """Leads and engineers read prompts; raters get 403, outsiders 404."""
    return labeling_selectors.project_for_user(
        user=signed_in_user(request), project_id=project_id, roles=labeling_selectors.DATA_ROLES
    )


class ProjectPromptsView(PromptImportView):
    """`GET`: the prompt browser (leads and engineers). `POST`: the import, as before."""

    @extend_schema(
        parameters=BROWSE_PARAMETERS, responses={200: PromptPageSerializer, **ERROR_RESPONSES}
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = _data_project(request, project_id)
        query = browse_query_parse(request.query_params)
        page = browse_prompts(project=project, query=query)
        next_url = None
        if page.next_after is not None:
            next_url = request.build_absolute_uri(
                f"{request.path}?{urlencode(query.params(after=page.next_after))}"
            )
        body = {
            "results": page.rows,
            "next": next_url,
            "run_id": page.run.pk if page.run is not None else None,
        }
        return Response(PromptPageSerializer(body).data)


class PromptDetailView(APIView):
    """One prompt with its responses, rankings, consensus and history (leads, engineers);
    `PATCH` changes its conversation or responses while no rater has ranked it (409 after)."""

    @extend_schema(responses={200: PromptDetailSerializer, **ERROR_RESPONSES})
    def get(self, request: Request, prompt_id: int) -> Response:
        prompt = prompt_for_reader(
            user=signed_in_user(request), prompt_id=prompt_id, roles=labeling_selectors.DATA_ROLES
        )
        return Response(PromptDetailSerializer(prompt_detail(prompt=prompt)).data)

    @extend_schema(
        request=PromptEditSerializer,
        responses={200: PromptDetailSerializer, **ERROR_RESPONSES, **CONFLICT},
    )
    def patch(self, request: Request, prompt_id: int) -> Response:
        prompt = prompt_for_reader(
            user=signed_in_user(request), prompt_id=prompt_id, roles=labeling_selectors.DATA_ROLES
        )
        if not isinstance(request.data, dict):
            raise InvalidInput("the body must be a JSON object", field="body")
        labeling_services.prompt_content_update(
            prompt=prompt, changes=dict(request.data), by=signed_in_user(request)
        )
        prompt.refresh_from_db()
        return Response(PromptDetailSerializer(prompt_detail(prompt=prompt)).data)


class PromptBulkView(APIView):
    """Leads: mark or unmark gold, reopen for one more rater, archive or restore prompts."""

    @extend_schema(
        request=BulkActionSerializer, responses={200: BulkResultSerializer, **ERROR_RESPONSES}
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = labeling_selectors.project_for_user(
            user=signed_in_user(request),
            project_id=project_id,
            roles=labeling_selectors.LEAD_ROLES,
        )
        data = BulkActionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = prompts_bulk_action(
            project=project,
            action=data.validated_data["action"],
            prompt_ids=data.validated_data["prompt_ids"],
            reason=data.validated_data["reason"],
            by=signed_in_user(request),
        )
        return Response(BulkResultSerializer(result).data)
