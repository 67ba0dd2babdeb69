"""The demonstration API's URLs (included under /api/ by config.urls)."""

from django.urls import path

from authoring.demonstrations.api import views

urlpatterns = [
    path(
        "assignments/<int:assignment_id>/demonstration/",
        views.DemonstrationSubmitView.as_view(),
        name="api-demonstration-submit",
    ),
    path(
        "demonstration-reviews/<int:review_id>/",
        views.ReviewSubmitView.as_view(),
        name="api-demonstration-review",
    ),
    path(
        "demonstration-reviews/<int:review_id>/skip/",
        views.ReviewSkipView.as_view(),
        name="api-demonstration-review-skip",
    ),
]
