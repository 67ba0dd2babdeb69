"""The signed-in user of a request, typed as a User (views are behind login already)."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request


def signed_in_user(request: HttpRequest | Request) -> User:
    user = request.user
    if isinstance(user, AnonymousUser) or not user.is_authenticated:
        raise NotAuthenticated("sign in first")
    return user


AnyUser = User | AnonymousUser
