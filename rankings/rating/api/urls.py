"""The rater API's URLs, the first the API tries (`config.urls`: most calls are these)."""

from django.urls import path

from rankings.rating.api import views

urlpatterns = [
    path(
        "projects/<int:project_id>/next-task/", views.NextTaskView.as_view(), name="api-next-task"
    ),
    path(
        "assignments/<int:assignment_id>/ranking/",
        views.RankingSubmitView.as_view(),
        name="api-ranking",
    ),
    path("assignments/<int:assignment_id>/skip/", views.SkipView.as_view(), name="api-skip"),
    path("assignments/<int:assignment_id>/undo/", views.UndoView.as_view(), name="api-undo"),
    path("assignments/<int:assignment_id>/renew/", views.RenewView.as_view(), name="api-renew"),
]
