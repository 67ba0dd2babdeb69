"""The rater page's URLs, included by `rankings.urls` under its `rankings` namespace."""

from django.urls import path

from rankings.rating import views

urlpatterns = [
    path("<int:project_id>/", views.rate, name="rate"),
    path("<int:project_id>/guidelines/seen/", views.guidelines_seen, name="guidelines_seen"),
    path("assignments/<int:assignment_id>/submit/", views.submit, name="submit"),
    path("assignments/<int:assignment_id>/skip/", views.skip, name="skip"),
    path("assignments/<int:assignment_id>/undo/", views.undo, name="undo"),
    path("assignments/<int:assignment_id>/renew/", views.renew, name="renew"),
]
