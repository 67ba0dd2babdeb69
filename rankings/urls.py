from django.urls import path

from rankings import views

app_name = "rankings"
urlpatterns = [
    path("<int:project_id>/", views.rate, name="rate"),
]
