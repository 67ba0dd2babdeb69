from django.urls import path

from rankings.leaderboard import views

# Included by rankings/urls.py (namespace "rankings").
urlpatterns = [
    path("<int:project_id>/leaderboard/", views.leaderboard, name="leaderboard"),
]
