from django.urls import include, path

from rankings.api import views

urlpatterns = [
    path("", include("rankings.leaderboard.api_urls")),
    path(
        "projects/<int:project_id>/agreement/", views.AgreementView.as_view(), name="api-agreement"
    ),
    path("projects/<int:project_id>/raters/", views.RaterListView.as_view(), name="api-raters"),
    path(
        "projects/<int:project_id>/raters/<str:username>/exclude/",
        views.RaterExcludeView.as_view(),
        name="api-rater-exclude",
    ),
    path("projects/<int:project_id>/flags/", views.FlagListView.as_view(), name="api-flags"),
    path("flags/<int:flag_id>/", views.FlagDetailView.as_view(), name="api-flag"),
    path("flags/<int:flag_id>/dismiss/", views.FlagDismissView.as_view(), name="api-flag-dismiss"),
    path(
        "flags/<int:flag_id>/pause-rater/",
        views.FlagPauseRaterView.as_view(),
        name="api-flag-pause-rater",
    ),
    path(
        "flags/<int:flag_id>/exclude-rater/",
        views.FlagExcludeRaterView.as_view(),
        name="api-flag-exclude-rater",
    ),
    path(
        "projects/<int:project_id>/prompts/low-agreement/",
        views.LowAgreementPromptsView.as_view(),
        name="api-low-agreement-prompts",
    ),
    path(
        "projects/<int:project_id>/prompts/extra-raters/",
        views.ExtraRatersPromptsView.as_view(),
        name="api-extra-raters-prompts",
    ),
]
