from django.urls import path

from exports.api import card, records, views

urlpatterns = [
    path("projects/<int:project_id>/exports/", views.ExportListView.as_view(), name="api-exports"),
    path(
        "projects/<int:project_id>/exports/stream/",
        views.ExportStreamView.as_view(),
        name="api-exports-stream",
    ),
    path(
        "projects/<int:project_id>/exports/records/<str:format_name>/",
        records.RecordExportView.as_view(),
        name="api-exports-records",
    ),
    path("exports/<int:export_id>/", views.ExportDetailView.as_view(), name="api-export"),
    path(
        "exports/<int:export_id>/download/",
        views.ExportDownloadView.as_view(),
        name="api-export-download",
    ),
    path("exports/<int:export_id>/file/", views.ExportFileView.as_view(), name="api-export-file"),
    path("exports/<int:export_id>/card/", card.ExportCardView.as_view(), name="api-export-card"),
    path(
        "exports/<int:export_id>/archive/",
        card.ExportArchiveView.as_view(),
        name="api-export-archive",
    ),
    path(
        "exports/<int:export_id>/preview/",
        views.ExportPreviewView.as_view(),
        name="api-export-preview",
    ),
]
