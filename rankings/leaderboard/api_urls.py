from django.urls import path

from rankings.leaderboard.api import LeaderboardView

# Included by rankings/api/urls.py.
urlpatterns = [
    path(
        "projects/<int:project_id>/leaderboard/",
        LeaderboardView.as_view(),
        name="api-leaderboard",
    ),
]
