"""Browser pages for labeling: my projects, joining by invite, the lead's project pages."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from core.auth import signed_in_user
from core.errors import InvalidInput, NotAllowed, NotFound, RanklabError
from labeling import selectors, services
from labeling.forms import (
    GoldForm,
    ImportForm,
    InviteForm,
    JoinForm,
    MemberActionForm,
    ProjectCreateForm,
    ProjectSettingsForm,
)
from labeling.models import Membership, Project, Role


def lead_project_or_error(
    request: HttpRequest, project_id: int, roles: tuple[str, ...] = selectors.LEAD_ROLES
) -> Project:
    try:
        return selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=roles
        )
    except NotFound as error:
        raise Http404(error.message) from error
    except NotAllowed as error:
        raise PermissionDenied(error.message) from error


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    memberships = (
        Membership.objects.filter(user=user).select_related("project").order_by("project__name")
    )
    rows = [
        {
            "membership": membership,
            "project": membership.project,
            "progress": selectors.project_progress(project=membership.project),
            "done": selectors.rater_done_count(project=membership.project, rater=user),
            "manages": user.is_staff or membership.role == Role.LEAD,
            "sees_data": user.is_staff or membership.role in selectors.DATA_ROLES,
        }
        for membership in memberships
    ]
    may_create = user.is_staff or user.has_perm("labeling.add_project")
    return render(request, "labeling/home.html", {"rows": rows, "may_create": may_create})


@login_required
def project_new(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    if not (user.is_staff or user.has_perm("labeling.add_project")):
        raise PermissionDenied("creating projects needs staff status or the add_project permission")
    form = ProjectCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        project = services.project_create(creator=user, **form.cleaned_data)
        messages.success(request, f"Project “{project.name}” created. Import prompts next.")
        return redirect("labeling:project", project_id=project.pk)
    return render(request, "labeling/project_new.html", {"form": form})


AUDIT_ON_PAGE = 30


def project_page_context(project: Project, **extra: Any) -> dict[str, Any]:
    members = (
        project.memberships.select_related("user")
        .annotate(
            submitted=Count(
                "user__assignments",
                filter=Q(user__assignments__project=project, user__assignments__status="submitted"),
            )
        )
        .order_by("role", "user__username")
    )
    return {
        "project": project,
        "progress": selectors.project_progress(project=project),
        "members": members,
        "invites": project.invites.order_by("-created_at")[:10],
        "settings_form": extra.pop("settings_form", None) or ProjectSettingsForm(instance=project),
        "import_form": extra.pop("import_form", None) or ImportForm(),
        "invite_form": extra.pop("invite_form", None) or InviteForm(),
        "gold_form": extra.pop("gold_form", None) or GoldForm(),
        "gold_prompts": project.prompts.filter(is_gold=True).order_by("id")[:50],
        "gold_count": project.prompts.filter(is_gold=True).count(),
        "reopened": project.prompts.filter(extra_raters__gt=0).order_by("-id")[:20],
        "audit_events": selectors.audit_events(project=project)[:AUDIT_ON_PAGE],
        "queue": selectors.queue_health(project=project),
        **extra,
    }


@login_required
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project_or_error(request, project_id)
    return render(request, "labeling/project.html", project_page_context(project))


@login_required
@require_POST
def project_settings(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project_or_error(request, project_id)
    form = ProjectSettingsForm(request.POST, instance=project)
    if form.is_valid():
        changed = {name: form.cleaned_data[name] for name in form.changed_data}
        services.project_update(project=project, by=signed_in_user(request), **changed)
        message = "Settings saved."
        form = ProjectSettingsForm(instance=project)
        status = 200
    else:
        message = "Some settings need fixing; see the marked fields."
        status = InvalidInput.status_code
    context = project_page_context(project, settings_form=form, settings_message=message)
    if request.htmx:  # type: ignore[attr-defined]
        response = render(request, "labeling/project.html#settings", context, status=status)
        if status == 200:  # overlap and gold changes move prompts between states
            trigger_client_event(response, QUEUE_CHANGED)
        return response
    if status == 200:
        messages.success(request, message)
        return redirect("labeling:project", project_id=project.pk)
    return render(request, "labeling/project.html", context, status=status)


@login_required
@require_POST
def project_import(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project_or_error(request, project_id, roles=selectors.DATA_ROLES)
    form = ImportForm(request.POST, request.FILES)
    import_message, import_error = "", ""
    if form.is_valid():
        try:
            created = services.prompts_import(
                project=project, raw=form.cleaned_data["file"].read(), by=signed_in_user(request)
            )
        except RanklabError as error:
            import_error = f"Nothing was imported: {error.message}"
        else:
            import_message = f"Imported {len(created)} prompts."
    else:
        import_error = "; ".join(
            str(message) for errors in form.errors.values() for message in errors
        )
    status = InvalidInput.status_code if import_error else 200
    if not request.htmx and not import_error:  # type: ignore[attr-defined]
        messages.success(request, import_message)
        return redirect("labeling:project", project_id=project.pk)
    context = project_page_context(
        project, import_message=import_message, import_error=import_error
    )
    template = "labeling/project.html#imports" if request.htmx else "labeling/project.html"  # type: ignore[attr-defined]
    return render(request, template, context, status=status)


@login_required
@require_POST
def project_invite(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project_or_error(request, project_id)
    form = InviteForm(request.POST)
    if not form.is_valid():
        context = project_page_context(project, invite_form=form)
        template = "labeling/project.html#invites" if request.htmx else "labeling/project.html"  # type: ignore[attr-defined]
        return render(request, template, context, status=InvalidInput.status_code)
    invite = services.invite_create(
        project=project, created_by=signed_in_user(request), role=form.cleaned_data["role"]
    )
    context = project_page_context(project, new_invite=invite)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "labeling/project.html#invites", context)
    messages.success(request, f"Invite created: /join/{invite.code}/")
    return redirect("labeling:project", project_id=project.pk)


CONFIRMED_ACTIONS = ("pause", "exclude")


@login_required
@require_POST
def project_member(request: HttpRequest, project_id: int, username: str) -> HttpResponse:
    """Pause, resume, exclude or include a member. Pause and exclude are confirmed first:
    htmx asks in the browser (`hx-confirm`); without JavaScript the first post answers a
    confirmation page whose button posts again with `confirmed`."""
    project = lead_project_or_error(request, project_id)
    form = MemberActionForm(request.POST)
    if not form.is_valid():
        raise Http404("unknown action")
    action = form.cleaned_data["action"]
    htmx = bool(request.htmx)  # type: ignore[attr-defined]
    if action in CONFIRMED_ACTIONS and not htmx and not request.POST.get("confirmed"):
        return render(
            request,
            "labeling/member_confirm.html",
            {"project": project, "username": username, "action": action},
        )
    member_error = ""
    try:
        services.member_update(
            project=project, username=username, by=signed_in_user(request), **MEMBER_ACTIONS[action]
        )
    except NotFound as error:
        raise Http404(error.message) from error
    except InvalidInput as error:
        member_error = error.message
    status = InvalidInput.status_code if member_error else 200
    context = project_page_context(
        project, member_error=member_error, member_error_for=username if member_error else ""
    )
    if htmx:
        response = render(request, "labeling/project.html#members", context, status=status)
        if not member_error:  # a pause releases the rater's leases
            trigger_client_event(response, QUEUE_CHANGED)
        return response
    if member_error:
        return render(request, "labeling/project.html", context, status=status)
    return redirect("labeling:project", project_id=project.pk)


MEMBER_ACTIONS: dict[str, dict[str, Any]] = {
    "pause": {"status": "paused"},
    "resume": {"status": "active"},
    "exclude": {"excluded": True},
    "include": {"excluded": False},
}


QUEUE_CHANGED = "queue-changed"


@login_required
@require_GET
def project_queue(request: HttpRequest, project_id: int) -> HttpResponse:
    """The queue health section alone: the page reloads it after an action changes it."""
    project = lead_project_or_error(request, project_id)
    return render(
        request,
        "labeling/project.html#queue",
        {"project": project, "queue": selectors.queue_health(project=project)},
    )


@login_required
@require_POST
def project_lease_release(
    request: HttpRequest, project_id: int, assignment_id: int
) -> HttpResponse:
    """Release a stuck lease: its prompt goes back to the queue."""
    project = lead_project_or_error(request, project_id)
    queue_message, queue_error = "", ""
    try:
        assignment = services.lease_release(
            project=project, assignment_id=assignment_id, by=signed_in_user(request)
        )
    except RanklabError as error:
        queue_error = error.message
    else:
        queue_message = f"Released {assignment.rater}'s lease on prompt #{assignment.prompt_id}."
    status = InvalidInput.status_code if queue_error else 200
    context = project_page_context(project, queue_message=queue_message, queue_error=queue_error)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "labeling/project.html#queue", context, status=status)
    if not queue_error:
        messages.success(request, queue_message)
        return redirect("labeling:project", project_id=project.pk)
    return render(request, "labeling/project.html", context, status=status)


@login_required
@require_POST
def guidelines_preview(request: HttpRequest, project_id: int) -> HttpResponse:
    """The guidelines being edited, rendered as raters will see them (same sanitizer)."""
    project = lead_project_or_error(request, project_id)
    text = request.POST.get("guidelines", "")[:GUIDELINES_PREVIEW_CHARS]
    return render(
        request, "labeling/project.html#guidelines_preview", {"project": project, "text": text}
    )


GUIDELINES_PREVIEW_CHARS = 200_000


@login_required
@require_POST
def project_gold(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project_or_error(request, project_id)
    form = GoldForm(request.POST)
    gold_message, gold_error = "", ""
    if form.is_valid():
        try:
            prompt = services.prompt_for_lead(
                project=project, prompt_ref=form.cleaned_data["prompt"]
            )
            text = form.cleaned_data["ranking"].strip()
            groups = services.gold_ranking_from_labels(prompt=prompt, text=text) if text else None
            services.prompt_set_gold(
                project=project, prompt=prompt, gold_ranking=groups, by=signed_in_user(request)
            )
        except RanklabError as error:
            gold_error = error.message
        else:
            gold_message = f"{prompt} is {'now gold: ' + text if groups else 'no longer gold'}."
    else:
        gold_error = "give a prompt id or external id"
    context = project_page_context(
        project, gold_message=gold_message, gold_error=gold_error, gold_form=form
    )
    status = InvalidInput.status_code if gold_error else 200
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "labeling/project.html#gold", context, status=status)
    if not gold_error:
        messages.success(request, gold_message)
        return redirect("labeling:project", project_id=project.pk)
    return render(request, "labeling/project.html", context, status=status)


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
