"""REST endpoints for auth, projects, members, invites, imports and gold prompts.

The rater's endpoints (next task, submit, skip, undo, renew) live with the rating flow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any, cast

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, parsers, status
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ERROR_RESPONSES
from core.auth import signed_in_user
from core.errors import InvalidInput, NotAllowed, NotFound
from core.parsers import PayloadTooLarge
from core.throttles import SIGN_IN_THROTTLES
from labeling import selectors, services
from labeling.accounts.models import TokenOrigin
from labeling.accounts.services import sign_in_token_create
from labeling.api.serializers import (
    AuditEventSerializer,
    GoldResultSerializer,
    GoldSerializer,
    ImportResultSerializer,
    InviteCreateSerializer,
    InviteSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    ProjectSerializer,
    SignupSerializer,
    TokenRequestSerializer,
    TokenSerializer,
)
from labeling.importing import TOO_LARGE_ADVICE
from labeling.models import AuditEvent, Membership, Role


class ObtainTokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = SIGN_IN_THROTTLES

    @extend_schema(
        request=TokenRequestSerializer, responses={200: TokenSerializer, **ERROR_RESPONSES}
    )
    def post(self, request: Request) -> Response:
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(
            request,
            username=data.validated_data["username"],
            password=data.validated_data["password"],
        )
        if user is None:
            raise InvalidInput("unknown username or wrong password", field="password")
        created = sign_in_token_create(user=user)
        return Response(
            {
                "token": created.secret,
                "username": user.get_username(),
                "expires_at": created.token.expires_at,
            }
        )


class SignupView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = SIGN_IN_THROTTLES

    @extend_schema(request=SignupSerializer, responses={201: TokenSerializer, **ERROR_RESPONSES})
    def post(self, request: Request) -> Response:
        data = SignupSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_signup_with_invite(**data.validated_data)
        created = sign_in_token_create(user=user, origin=TokenOrigin.SIGN_UP)
        return Response(
            {
                "token": created.secret,
                "username": user.get_username(),
                "expires_at": created.token.expires_at,
            },
            status=status.HTTP_201_CREATED,
        )


def user_may_create_projects(user: User) -> bool:
    return user.is_staff or user.has_perm("labeling.add_project")


def roles_by_project(user: User) -> dict[int, str]:
    return dict(Membership.objects.filter(user=user).values_list("project_id", "role"))


class ProjectListView(APIView):
    @extend_schema(responses={200: ProjectSerializer(many=True)})
    def get(self, request: Request) -> Response:
        projects = selectors.projects_for_user(user=signed_in_user(request)).order_by("id")
        user = signed_in_user(request)
        roles = roles_by_project(user)
        if user.is_staff:
            roles = {project.pk: Role.LEAD for project in projects}
        return Response(ProjectSerializer(projects, many=True, context={"roles": roles}).data)

    @extend_schema(request=ProjectSerializer, responses={201: ProjectSerializer, **ERROR_RESPONSES})
    def post(self, request: Request) -> Response:
        if not user_may_create_projects(signed_in_user(request)):
            raise NotAllowed("creating projects needs staff status or the add_project permission")
        data = ProjectSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_create(creator=signed_in_user(request), **data.validated_data)
        body = ProjectSerializer(project, context={"roles": {project.pk: Role.LEAD}}).data
        return Response(body, status=status.HTTP_201_CREATED)


class ProjectDetailView(APIView):
    @extend_schema(responses={200: ProjectSerializer, **ERROR_RESPONSES})
    def get(self, request: Request, project_id: int) -> Response:
        project = selectors.project_for_user(user=signed_in_user(request), project_id=project_id)
        role = selectors.project_role_for(user=signed_in_user(request), project=project)
        return Response(ProjectSerializer(project, context={"roles": {project.pk: role}}).data)

    @extend_schema(request=ProjectSerializer, responses={200: ProjectSerializer, **ERROR_RESPONSES})
    def patch(self, request: Request, project_id: int) -> Response:
        project = selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=selectors.LEAD_ROLES
        )
        data = ProjectSerializer(project, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.project_update(project=project, by=signed_in_user(request), **data.validated_data)
        return Response(ProjectSerializer(project, context={"roles": {project.pk: Role.LEAD}}).data)


class InviteView(APIView):
    @extend_schema(responses={200: InviteSerializer(many=True), **ERROR_RESPONSES})
    def get(self, request: Request, project_id: int) -> Response:
        project = selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=selectors.LEAD_ROLES
        )
        invites = project.invites.all()
        return Response(InviteSerializer(invites, many=True, context={"request": request}).data)

    @extend_schema(
        request=InviteCreateSerializer, responses={201: InviteSerializer, **ERROR_RESPONSES}
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=selectors.LEAD_ROLES
        )
        data = InviteCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        invite = services.invite_create(
            project=project, created_by=signed_in_user(request), **data.validated_data
        )
        return Response(
            InviteSerializer(invite, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )


class MemberListView(APIView):
    @extend_schema(responses={200: MemberSerializer(many=True), **ERROR_RESPONSES})
    def get(self, request: Request, project_id: int) -> Response:
        project = selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=selectors.DATA_ROLES
        )
        members = project.memberships.select_related("user").order_by("user__username")
        return Response(MemberSerializer(members, many=True).data)


class MemberDetailView(APIView):
    @extend_schema(
        request=MemberUpdateSerializer, responses={200: MemberSerializer, **ERROR_RESPONSES}
    )
    def patch(self, request: Request, project_id: int, username: str) -> Response:
        project = selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=selectors.LEAD_ROLES
        )
        data = MemberUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.member_update(
            project=project, username=username, by=signed_in_user(request), **data.validated_data
        )
        return Response(MemberSerializer(membership).data)


class AuditPagination(CursorPagination):
    ordering = "-id"
    page_size = 50


class AuditLogView(generics.ListAPIView[AuditEvent]):
    """The project's audit log (leads and engineers): newest first, 50 a page (`next`)."""

    serializer_class = AuditEventSerializer
    pagination_class = AuditPagination

    @extend_schema(responses={200: AuditEventSerializer(many=True), **ERROR_RESPONSES})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[AuditEvent]:
        project = selectors.project_for_user(
            user=signed_in_user(self.request),
            project_id=self.kwargs["project_id"],
            roles=selectors.DATA_ROLES,
        )
        return selectors.audit_events(project=project)


class RawBodyParser(parsers.BaseParser):
    """Leaves the body as bytes (imports accept a JSON list or JSON Lines), up to
    `IMPORT_MAX_BYTES`: a larger body is refused with 413 before it fills the memory."""

    media_type = "*/*"

    # Bytes, not the Mapping DRF's stub promises: PromptImportView parses them itself.
    def parse(  # type: ignore[override]
        self,
        stream: IO[Any] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        limit = settings.IMPORT_MAX_BYTES
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise PayloadTooLarge(
                f"the import is larger than the limit of {limit} bytes; {TOO_LARGE_ADVICE}"
            )
        return body


class PromptImportView(APIView):
    parser_classes = [RawBodyParser]

    @extend_schema(
        request={
            "application/json": {"type": "array", "items": {"type": "object"}},
            "application/jsonl": {"type": "string"},
        },
        responses={201: ImportResultSerializer, **ERROR_RESPONSES},
        examples=[
            OpenApiExample(
                "Two responses",
                request_only=True,
                value=[
                    {
                        "external_id": "p1",
                        "prompt": "Explain recursion in one paragraph.",
                        "responses": [
                            {"external_id": "a", "text": "Recursion is…", "model": "m-7b"},
                            {"external_id": "b", "text": "A function that…", "model": "m-70b"},
                        ],
                    }
                ],
            )
        ],
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=selectors.DATA_ROLES
        )
        # RawBodyParser hands the body over as bytes.
        prompt_ids = services.prompts_import(
            project=project, raw=cast(bytes, request.data), by=signed_in_user(request)
        )
        return Response(
            {"created": len(prompt_ids), "prompt_ids": prompt_ids},
            status=status.HTTP_201_CREATED,
        )


class PromptGoldView(APIView):
    @extend_schema(request=GoldSerializer, responses={200: GoldResultSerializer, **ERROR_RESPONSES})
    def put(self, request: Request, project_id: int, prompt_id: int) -> Response:
        project = selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=selectors.LEAD_ROLES
        )
        data = GoldSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        prompt = project.prompts.filter(pk=prompt_id).first()
        if prompt is None:
            raise NotFound("prompt not found", field="prompt_id")
        prompt = services.prompt_set_gold(
            project=project,
            prompt=prompt,
            gold_ranking=data.validated_data["gold_ranking"],
            by=signed_in_user(request),
        )
        return Response(
            {"prompt_id": prompt.pk, "is_gold": prompt.is_gold, "gold_ranking": prompt.gold_ranking}
        )
