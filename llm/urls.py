from django.urls import path

from llm import views

app_name = "llm"
urlpatterns = [
    path("<int:project_id>/", views.project_models, name="project"),
    path("<int:project_id>/endpoints/", views.endpoint_add, name="endpoint_add"),
    path(
        "<int:project_id>/endpoints/<int:endpoint_id>/delete/",
        views.endpoint_remove,
        name="endpoint_delete",
    ),
    path(
        "<int:project_id>/endpoints/<int:endpoint_id>/test/",
        views.endpoint_try,
        name="endpoint_test",
    ),
    path("<int:project_id>/generations/", views.generation_start, name="generation_start"),
    path("<int:project_id>/judge/", views.judge_start, name="judge_start"),
    path("<int:project_id>/judge/routing/", views.judge_routing, name="judge_routing"),
    path("<int:project_id>/judge/template/", views.judge_template_save, name="judge_template"),
]
