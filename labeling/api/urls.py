from django.urls import path

from labeling.accounts import api as token_views
from labeling.api import queue, views

urlpatterns = [
    path("auth/token/", views.ObtainTokenView.as_view(), name="api-token"),
    path("auth/signup/", views.SignupView.as_view(), name="api-signup"),
    path("tokens/", token_views.ApiTokenListView.as_view(), name="api-tokens"),
    path(
        "tokens/<int:token_id>/", token_views.ApiTokenDetailView.as_view(), name="api-token-detail"
    ),
    path("projects/", views.ProjectListView.as_view(), name="api-projects"),
    path("projects/<int:project_id>/", views.ProjectDetailView.as_view(), name="api-project"),
    path("projects/<int:project_id>/invites/", views.InviteView.as_view(), name="api-invites"),
    path("projects/<int:project_id>/members/", views.MemberListView.as_view(), name="api-members"),
    path("projects/<int:project_id>/audit/", views.AuditLogView.as_view(), name="api-audit"),
    path("projects/<int:project_id>/queue/", queue.QueueHealthView.as_view(), name="api-queue"),
    path(
        "projects/<int:project_id>/leases/<int:assignment_id>/release/",
        queue.LeaseReleaseView.as_view(),
        name="api-lease-release",
    ),
    path(
        "projects/<int:project_id>/members/<str:username>/",
        views.MemberDetailView.as_view(),
        name="api-member",
    ),
    path(
        "projects/<int:project_id>/prompts/", views.PromptImportView.as_view(), name="api-prompts"
    ),
    path(
        "projects/<int:project_id>/prompts/<int:prompt_id>/gold/",
        views.PromptGoldView.as_view(),
        name="api-prompt-gold",
    ),
]
