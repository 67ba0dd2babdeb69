"""The prompt browser and the prompt page (browser).

The browser is one GET form: with htmx it swaps only the `results` fragment (and pushes the
URL), without it the whole page loads. Bulk actions post the checked rows and come back
to the same filters. The prompt page marks gold from an ordering of the responses made
like a rater's (rank numbers per response; drag and keys in prompts.js) — no ids typed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from core.auth import signed_in_user
from core.errors import InvalidInput, NotAllowed, NotFound, RanklabError
from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.models import Project, Prompt
from rankings.prompts.actions import BULK_ACTIONS, prompts_bulk_action
from rankings.prompts.browse import browse_prompts, model_names_seen
from rankings.prompts.detail import prompt_detail
from rankings.prompts.query import (
    DEFAULT_ORDERING,
    ORDERINGS,
    STATES,
    BrowseQuery,
    browse_query_parse,
)

BROWSER = "rankings/prompts/browser.html"
PROMPT_PAGE = "rankings/prompts/prompt.html"
RANK_PREFIX = "rank_"


def _project(request: HttpRequest, project_id: int, roles: tuple[str, ...]) -> Project:
    try:
        return labeling_selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=roles
        )
    except NotFound as error:
        raise Http404(error.message) from error
    except NotAllowed as error:
        raise PermissionDenied(error.message) from error


def _prompt(project: Project, prompt_id: int) -> Prompt:
    prompt = Prompt.objects.select_related("project").filter(pk=prompt_id, project=project).first()
    if prompt is None:
        raise Http404("prompt not found")
    return prompt


def _is_lead(request: HttpRequest, project: Project) -> bool:
    role = labeling_selectors.project_role_for(user=signed_in_user(request), project=project)
    return role in labeling_selectors.LEAD_ROLES


@login_required
@require_GET
def prompt_browser(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project(request, project_id, labeling_selectors.DATA_ROLES)
    error: RanklabError | None = None
    try:
        query = browse_query_parse(request.GET)
    except InvalidInput as invalid:
        error, query = invalid, BrowseQuery()
    page = browse_prompts(project=project, query=query)
    base = reverse("rankings:prompts", args=[project.pk])
    context: dict[str, Any] = {
        "project": project,
        "query": query,
        "page": page,
        "error": error,
        "is_lead": _is_lead(request, project),
        "states": STATES,
        "orderings": ORDERINGS,
        "default_ordering": DEFAULT_ORDERING,
        "bulk_actions": BULK_ACTIONS,
        "models": model_names_seen(project=project),
        "next_url": (
            f"{base}?{urlencode(query.params(after=page.next_after))}"
            if page.next_after is not None
            else ""
        ),
        "this_url": f"{base}?{urlencode(query.params(after=query.after))}",
        "first_url": f"{base}?{urlencode(query.params())}",
    }
    template = f"{BROWSER}#results" if getattr(request, "htmx", False) else BROWSER
    return render(request, template, context, status=400 if error else 200)


@login_required
@require_POST
def prompts_bulk(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project(request, project_id, labeling_selectors.LEAD_ROLES)
    back = _safe_back(request, project)
    prompt_page_id = request.POST.get("return_to_prompt", "")
    if prompt_page_id.isdigit():
        back = reverse("rankings:prompt", args=[project.pk, int(prompt_page_id)])
    raw_ids = request.POST.getlist("prompt_ids")
    try:
        if not all(value.isdigit() for value in raw_ids):
            raise InvalidInput("prompt_ids: not prompt ids", field="prompt_ids")
        result = prompts_bulk_action(
            project=project,
            action=request.POST.get("action", ""),
            prompt_ids=[int(value) for value in raw_ids],
            by=signed_in_user(request),
            reason=request.POST.get("reason", ""),
        )
    except RanklabError as error:
        messages.error(request, error.message)
        return redirect(back)
    label = BULK_ACTIONS[result.action]
    text = f"{label}: {len(result.changed)} prompt{'s' if len(result.changed) != 1 else ''} changed"
    if result.unchanged:
        reasons = sorted({str(item["reason"]) for item in result.unchanged})
        text += f"; {len(result.unchanged)} left as they were ({'; '.join(reasons)})"
    messages.success(request, text + ".")
    return redirect(back)


def _safe_back(request: HttpRequest, project: Project) -> str:
    """Back to the browser with the same filters (only ever this project's browser)."""
    base = reverse("rankings:prompts", args=[project.pk])
    query = request.POST.get("back", "")
    return f"{base}?{query}" if query and "://" not in query and "\n" not in query else base


@login_required
@require_GET
def prompt_page(request: HttpRequest, project_id: int, prompt_id: int) -> HttpResponse:
    project = _project(request, project_id, labeling_selectors.DATA_ROLES)
    prompt = _prompt(project, prompt_id)
    return render(request, PROMPT_PAGE, _prompt_context(request, project, prompt))


def _prompt_context(
    request: HttpRequest,
    project: Project,
    prompt: Prompt,
    posted_ranks: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    detail = prompt_detail(prompt=prompt)
    chosen: dict[int, int | None] = {
        int(member): place
        for place, group in enumerate(prompt.gold_ranking or [], 1)
        for member in group
    }
    if posted_ranks is not None:
        chosen = {
            response.id: _rank_number(posted_ranks.get(f"{RANK_PREFIX}{response.id}"))
            for response in detail.responses
        }
    return {
        "project": project,
        "detail": detail,
        "is_lead": _is_lead(request, project),
        "rank_choices": list(range(1, len(detail.responses) + 1)),
        "gold_rows": [
            {"response": response, "rank": chosen.get(response.id)} for response in detail.responses
        ],
        "browser_url": reverse("rankings:prompts", args=[project.pk]),
        **extra,
    }


def _rank_number(raw: Any) -> int | None:
    text = str(raw or "").strip()
    return int(text) if text.isdigit() else None


@login_required
@require_POST
def prompt_gold(request: HttpRequest, project_id: int, prompt_id: int) -> HttpResponse:
    """Set the gold ranking from rank numbers per response (equal numbers tie), or clear it."""
    project = _project(request, project_id, labeling_selectors.LEAD_ROLES)
    prompt = _prompt(project, prompt_id)
    try:
        groups = None if "clear" in request.POST else gold_groups_from_ranks(prompt, request.POST)
        labeling_services.prompt_set_gold(
            project=project, prompt=prompt, gold_ranking=groups, by=signed_in_user(request)
        )
    except RanklabError as error:
        context = _prompt_context(
            request, project, prompt, posted_ranks=request.POST, gold_error=error.message
        )
        return render(request, PROMPT_PAGE, context, status=400)
    messages.success(request, "Gold ranking saved." if groups else "Gold ranking removed.")
    return redirect("rankings:prompt", project_id=project.pk, prompt_id=prompt.pk)


def gold_groups_from_ranks(prompt: Prompt, data: Any) -> list[list[int]]:
    """`rank_<response id>` numbers → tie groups best first; every response needs one."""
    by_rank: dict[int, list[int]] = {}
    responses = list(prompt.responses.order_by("position").values_list("pk", "position"))
    missing = []
    for response_id, position in responses:
        raw = str(data.get(f"{RANK_PREFIX}{response_id}", "")).strip()
        if not raw:
            missing.append(chr(ord("A") + position))
            continue
        if not raw.isdigit() or not 1 <= int(raw) <= len(responses):
            raise InvalidInput(
                f"the rank of response {chr(ord('A') + position)} must be 1 to {len(responses)}",
                field="gold_ranking",
            )
        by_rank.setdefault(int(raw), []).append(response_id)
    if missing:
        raise InvalidInput(
            f"give every response a rank: {', '.join(missing)} "
            f"{'has' if len(missing) == 1 else 'have'} none",
            field="gold_ranking",
        )
    return [by_rank[rank] for rank in sorted(by_rank)]
