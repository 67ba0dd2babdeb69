from django.urls import path

from authoring.arena.api import views

app_name = "arena-api"

urlpatterns = [
    path(
        "projects/<int:project_id>/arena/battles/",
        views.BattleStartView.as_view(),
        name="battles",
    ),
    path("arena/battles/<int:battle_id>/", views.BattleDetailView.as_view(), name="battle"),
    path("arena/battles/<int:battle_id>/turns/", views.TurnCreateView.as_view(), name="turns"),
    path(
        "arena/battles/<int:battle_id>/turns/<int:number>/stream/",
        views.TurnStreamView.as_view(),
        name="stream",
    ),
    path(
        "arena/battles/<int:battle_id>/turns/<int:number>/vote/",
        views.VoteView.as_view(),
        name="vote",
    ),
    path("arena/battles/<int:battle_id>/reveal/", views.RevealView.as_view(), name="reveal"),
]
