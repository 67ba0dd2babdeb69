from django.urls import path

from exports import views

app_name = "exports"
urlpatterns = [
    path("<int:project_id>/", views.project_exports, name="project"),
    path("<int:project_id>/<int:job_id>/preview/", views.preview, name="preview"),
    path("<int:project_id>/<int:job_id>/delete-file/", views.delete_file, name="delete_file"),
]
