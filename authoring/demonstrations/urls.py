"""The demonstration page's actions; the page itself is the rater page `/rate/<id>/`."""

from django.urls import path

from authoring.demonstrations import views

app_name = "demonstrations"

urlpatterns = [
    path("assignments/<int:assignment_id>/submit/", views.submit, name="submit"),
    path("reviews/<int:review_id>/", views.review, name="review"),
    path("reviews/<int:review_id>/skip/", views.review_skip, name="review_skip"),
    path("preview/", views.preview, name="preview"),
]
