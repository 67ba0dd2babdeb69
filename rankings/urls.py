from django.urls import path

from rankings import quality_views, views

app_name = "rankings"
urlpatterns = [
    path("<int:project_id>/", views.rate, name="rate"),
    path("<int:project_id>/guidelines/seen/", views.guidelines_seen, name="guidelines_seen"),
    path("assignments/<int:assignment_id>/submit/", views.submit, name="submit"),
    path("assignments/<int:assignment_id>/skip/", views.skip, name="skip"),
    path("assignments/<int:assignment_id>/undo/", views.undo, name="undo"),
    path("assignments/<int:assignment_id>/renew/", views.renew, name="renew"),
    path("<int:project_id>/quality/", quality_views.quality, name="quality"),
    path(
        "<int:project_id>/quality/flags/<int:flag_id>/<slug:action>/",
        quality_views.flag_action,
        name="quality_flag_action",
    ),
    path(
        "<int:project_id>/quality/raters/<str:username>/<slug:action>/",
        quality_views.rater_action,
        name="quality_rater_action",
    ),
]
