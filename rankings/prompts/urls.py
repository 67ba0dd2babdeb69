"""The prompt browser's pages, included by `rankings.urls` under its `rankings` namespace."""

from django.urls import path

from rankings.prompts import views

urlpatterns = [
    path("<int:project_id>/prompts/", views.prompt_browser, name="prompts"),
    path("<int:project_id>/prompts/bulk/", views.prompts_bulk, name="prompts_bulk"),
    path("<int:project_id>/prompts/<int:prompt_id>/", views.prompt_page, name="prompt"),
    path("<int:project_id>/prompts/<int:prompt_id>/gold/", views.prompt_gold, name="prompt_gold"),
]
