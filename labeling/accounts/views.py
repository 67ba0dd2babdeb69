"""The token page (`/account/tokens/`) and logging out with the option to revoke tokens."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LogoutView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core.auth import signed_in_user
from core.errors import RanklabError
from labeling.accounts import services
from labeling.accounts.throttles import token_create_wait_seconds

EXPIRY_CHOICES = [("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("365", "1 year")]
EXPIRY_CHOICES += [("never", "Never")]


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="What the token is for, e.g. “nightly export”."
    )
    expires = forms.ChoiceField(choices=EXPIRY_CHOICES, initial="90", label="Expires after")

    def expires_in_days(self) -> int | None:
        value = self.cleaned_data["expires"]
        return None if value == "never" else int(value)


def _page(request: HttpRequest, status: int = 200, **context: Any) -> HttpResponse:
    user = signed_in_user(request)
    context.setdefault("form", TokenForm())
    context["tokens"] = services.api_tokens_for_user(user=user)[:100]
    return render(request, "labeling/tokens.html", context, status=status)


@login_required
def tokens_page(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _page(request)
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _page(request, status=400, form=form)
    wait = token_create_wait_seconds(request)
    if wait is not None:
        response = _page(
            request, status=429, form=form, error=f"Too many new tokens; try in {int(wait) + 1} s."
        )
        response["Retry-After"] = str(int(wait) + 1)
        return response
    try:
        created = services.api_token_create(
            user=signed_in_user(request),
            name=form.cleaned_data["name"],
            expires_in_days=form.expires_in_days(),
            session_key=request.session.session_key,
        )
    except RanklabError as error:
        form.add_error(error.field if error.field in form.fields else None, error.message)
        return _page(request, status=error.status_code, form=form)
    # Rendered, not redirected: the secret must not travel through the session or a URL.
    response = _page(request, status=201, created=created)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        token = services.api_token_revoke(user=signed_in_user(request), token_id=token_id)
    except RanklabError as error:
        return _page(request, status=error.status_code, error=error.message)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("accounts:tokens")


@login_required
@require_POST
def tokens_revoke_all(request: HttpRequest) -> HttpResponse:
    count = services.api_tokens_revoke_all(user=signed_in_user(request))
    messages.success(request, f"{count} token{'s' if count != 1 else ''} revoked.")
    return redirect("accounts:tokens")


class RevokingLogoutView(LogoutView):
    """Logging out may also revoke the API tokens this browser session made (checkbox
    `revoke_tokens` on the log-out form)."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated and request.POST.get("revoke_tokens"):
            services.api_tokens_revoke_all(
                user=signed_in_user(request), session_key=request.session.session_key or ""
            )
        return super().post(request, *args, **kwargs)
