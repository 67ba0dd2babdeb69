"""The red-team pages' URLs (the rater's chat is /rate/<id>/, through the task-kind registry)."""

from django.urls import path

from authoring.redteam import views

app_name = "redteam"

urlpatterns = [
    path("projects/<int:project_id>/", views.attempts_page, name="attempts"),
]
