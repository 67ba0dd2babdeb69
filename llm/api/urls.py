from django.urls import path

from llm.api import judge_views, views

urlpatterns = [
    path(
        "projects/<int:project_id>/endpoints/",
        views.EndpointListView.as_view(),
        name="api-endpoints",
    ),
    path("endpoints/<int:endpoint_id>/", views.EndpointDetailView.as_view(), name="api-endpoint"),
    path(
        "endpoints/<int:endpoint_id>/test/",
        views.EndpointTestView.as_view(),
        name="api-endpoint-test",
    ),
    path(
        "projects/<int:project_id>/generations/",
        views.GenerationListView.as_view(),
        name="api-generations",
    ),
    path("generations/<int:job_id>/", views.GenerationDetailView.as_view(), name="api-generation"),
    path(
        "projects/<int:project_id>/judge-runs/",
        judge_views.JudgeRunListView.as_view(),
        name="api-judge-runs",
    ),
    path(
        "judge-runs/<int:run_id>/", judge_views.JudgeRunDetailView.as_view(), name="api-judge-run"
    ),
    path(
        "projects/<int:project_id>/judge-template/",
        judge_views.JudgeTemplateView.as_view(),
        name="api-judge-template",
    ),
    path(
        "projects/<int:project_id>/judge-template/preview/",
        judge_views.JudgePreviewView.as_view(),
        name="api-judge-preview",
    ),
    path(
        "projects/<int:project_id>/judge-calibration/",
        judge_views.JudgeCalibrationView.as_view(),
        name="api-judge-calibration",
    ),
    path(
        "projects/<int:project_id>/judge-routing/",
        judge_views.JudgeRoutingView.as_view(),
        name="api-judge-routing",
    ),
]
