from django.urls import path

from rankings.api import views

urlpatterns = [
    path(
        "assignments/<int:assignment_id>/ranking/",
        views.RankingSubmitView.as_view(),
        name="api-ranking",
    ),
    path(
        "projects/<int:project_id>/agreement/", views.AgreementView.as_view(), name="api-agreement"
    ),
]
