from django.urls import path

from labeling import views

app_name = "labeling"
urlpatterns = [
    path("", views.home, name="home"),
    path("join/<str:code>/", views.join, name="join"),
    path("projects/new/", views.project_new, name="project-new"),
    path("projects/<int:project_id>/", views.project_detail, name="project"),
    path("projects/<int:project_id>/settings/", views.project_settings, name="project-settings"),
    path("projects/<int:project_id>/import/", views.project_import, name="project-import"),
    path("projects/<int:project_id>/invites/", views.project_invite, name="project-invite"),
    path("projects/<int:project_id>/gold/", views.project_gold, name="project-gold"),
    path(
        "projects/<int:project_id>/guidelines/preview/",
        views.guidelines_preview,
        name="guidelines-preview",
    ),
    path("projects/<int:project_id>/queue/", views.project_queue, name="project-queue"),
    path(
        "projects/<int:project_id>/leases/<int:assignment_id>/release/",
        views.project_lease_release,
        name="lease-release",
    ),
    path(
        "projects/<int:project_id>/members/<str:username>/",
        views.project_member,
        name="project-member",
    ),
]
