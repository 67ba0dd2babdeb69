"""Browser pages for labeling: my projects, joining by invite, the lead's project page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from labeling import selectors, services
from labeling.auth import signed_in_user
from labeling.errors import InvalidInput
from labeling.forms import JoinForm
from labeling.models import Membership


@login_required
def home(request: HttpRequest) -> HttpResponse:
    memberships = (
        Membership.objects.filter(user=signed_in_user(request))
        .select_related("project")
        .order_by("project__name")
    )
    rows = [
        {
            "membership": membership,
            "project": membership.project,
            "progress": selectors.project_progress(project=membership.project),
            "done": selectors.rater_done_count(
                project=membership.project, rater=signed_in_user(request)
            ),
        }
        for membership in memberships
    ]
    return render(request, "labeling/home.html", {"rows": rows})


def join(request: HttpRequest, code: str) -> HttpResponse:
    """Join a project by invite: signed-in users join at once, others sign up here."""
    try:
        invite = services.invite_usable(code=code)
    except InvalidInput as error:
        return render(request, "labeling/join.html", {"error": error.message}, status=404)
    if request.user.is_authenticated:
        if request.method == "POST":
            services.invite_accept(code=code, user=signed_in_user(request))
            messages.success(request, f"You joined {invite.project.name}.")
            return redirect("labeling:home")
        return render(request, "labeling/join.html", {"invite": invite})
    form = JoinForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_signup_with_invite(invite_code=code, **form.cleaned_data)
        except InvalidInput as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome! You joined {invite.project.name}.")
            return redirect("labeling:home")
    return render(request, "labeling/join.html", {"invite": invite, "form": form})
