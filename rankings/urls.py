from django.urls import path

from rankings import quality_views, views

app_name = "rankings"
urlpatterns = [
    path("<int:project_id>/", views.rate, name="rate"),
    path("assignments/<int:assignment_id>/submit/", views.submit, name="submit"),
    path("assignments/<int:assignment_id>/skip/", views.skip, name="skip"),
    path("<int:project_id>/quality/", quality_views.quality, name="quality"),
]
