from django.urls import path

from labeling.api import views

urlpatterns = [
    path("auth/token/", views.ObtainTokenView.as_view(), name="api-token"),
    path("auth/signup/", views.SignupView.as_view(), name="api-signup"),
    path("projects/", views.ProjectListView.as_view(), name="api-projects"),
    path("projects/<int:project_id>/", views.ProjectDetailView.as_view(), name="api-project"),
    path("projects/<int:project_id>/invites/", views.InviteView.as_view(), name="api-invites"),
    path("projects/<int:project_id>/members/", views.MemberListView.as_view(), name="api-members"),
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
