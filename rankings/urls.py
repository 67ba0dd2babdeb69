from django.urls import include, path

from rankings.quality import views as quality_views

app_name = "rankings"
urlpatterns = [
    path("", include("rankings.rating.urls")),
    path("", include("rankings.prompts.urls")),
    path("", include("rankings.leaderboard.urls")),
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
