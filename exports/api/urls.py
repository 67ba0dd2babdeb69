from django.urls import path

from exports.api import views

urlpatterns = [
    path("projects/<int:project_id>/exports/", views.ExportListView.as_view(), name="api-exports"),
    path("exports/<int:export_id>/", views.ExportDetailView.as_view(), name="api-export"),
    path(
        "exports/<int:export_id>/download/",
        views.ExportDownloadView.as_view(),
        name="api-export-download",
    ),
]
