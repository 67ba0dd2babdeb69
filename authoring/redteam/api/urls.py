"""The red-team API's URLs, included under /api/ by `config.urls`."""

from django.urls import path

from authoring.redteam.api import views

urlpatterns = [
    path(
        "assignments/<int:assignment_id>/red-team/turns/",
        views.TurnCreateView.as_view(),
        name="api-red-team-turns",
    ),
    path(
        "assignments/<int:assignment_id>/red-team/turns/<int:index>/stream/",
        views.TurnStreamView.as_view(),
        name="api-red-team-stream",
    ),
    path(
        "assignments/<int:assignment_id>/red-team/turns/<int:index>/flag/",
        views.TurnFlagView.as_view(),
        name="api-red-team-flag",
    ),
    path(
        "assignments/<int:assignment_id>/red-team/",
        views.AttemptSubmitView.as_view(),
        name="api-red-team-submit",
    ),
    path(
        "red-team/attempts/<int:attempt_id>/",
        views.AttemptDetailView.as_view(),
        name="api-red-team-attempt",
    ),
    path(
        "red-team/attempts/<int:attempt_id>/labels/",
        views.ReviewLabelView.as_view(),
        name="api-red-team-review",
    ),
    path(
        "projects/<int:project_id>/red-team/attempts/",
        views.AttemptListView.as_view(),
        name="api-red-team-attempts",
    ),
    path(
        "projects/<int:project_id>/red-team/review-next/",
        views.ReviewNextView.as_view(),
        name="api-red-team-review-next",
    ),
    path(
        "projects/<int:project_id>/red-team/send-to-ranking/",
        views.SendToRankingView.as_view(),
        name="api-red-team-send",
    ),
]
