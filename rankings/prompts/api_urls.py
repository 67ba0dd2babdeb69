"""API routes of the prompt browser. Included before labeling's API routes: the list and
the import share `projects/{id}/prompts/` (GET here, POST inherited from the import)."""

from django.urls import path

from rankings.prompts import api

urlpatterns = [
    path(
        "projects/<int:project_id>/prompts/",
        api.ProjectPromptsView.as_view(),
        name="api-prompts",
    ),
    path(
        "projects/<int:project_id>/prompts/bulk/",
        api.PromptBulkView.as_view(),
        name="api-prompts-bulk",
    ),
    path("prompts/<int:prompt_id>/", api.PromptDetailView.as_view(), name="api-prompt"),
]
