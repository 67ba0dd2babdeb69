"""Browser pages for rankings: the rater's ranking page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from labeling import selectors as labeling_selectors


@login_required
def rate(request: HttpRequest, project_id: int) -> HttpResponse:
    project = labeling_selectors.project_for_user(user=request.user, project_id=project_id)
    return render(request, "rankings/rate.html", {"project": project})
