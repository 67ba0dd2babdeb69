from django.urls import path

from rankings import views

app_name = "rankings"
urlpatterns = [
    path("<int:project_id>/", views.rate, name="rate"),
    path("assignments/<int:assignment_id>/submit/", views.submit, name="submit"),
    path("assignments/<int:assignment_id>/skip/", views.skip, name="skip"),
]
