from django.urls import path

from labeling.accounts import views

app_name = "accounts"
urlpatterns = [
    path("tokens/", views.tokens_page, name="tokens"),
    path("tokens/revoke-all/", views.tokens_revoke_all, name="tokens-revoke-all"),
    path("tokens/<int:token_id>/revoke/", views.token_revoke, name="token-revoke"),
]
