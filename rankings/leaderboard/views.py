"""The leaderboard page (leads and engineers): the chart with intervals, the standings and
the win-rate matrix, with the source, excluded raters and length control as options.

One URL. The options form is a plain GET form; with htmx it swaps only the ``board``
fragment and pushes the URL, so a reload or a shared link shows the same board.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from core.errors import NotAllowed, NotFound
from labeling import selectors as labeling_selectors
from labeling.models import Project
from rankings.leaderboard import chart
from rankings.leaderboard.api import leaderboard_body
from rankings.leaderboard.selectors import Source, project_leaderboard

TEMPLATE = "rankings/leaderboard.html"
HEAT_STEPS = 10


class LeaderboardOptionsForm(forms.Form):
    source = forms.ChoiceField(
        choices=[
            (Source.RANKINGS.value, "All rankings"),
            (Source.CONSENSUS.value, "Consensus per prompt"),
        ],
        required=False,
    )
    include_excluded = forms.BooleanField(required=False, label="Include excluded raters")
    length_control = forms.BooleanField(required=False, label="Control for response length")

    def options(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "source": Source(data["source"] or Source.RANKINGS.value),
            "include_excluded": data["include_excluded"],
            "length_control": data["length_control"],
        }


@login_required
@require_GET
def leaderboard(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project_for(request, project_id)
    form = LeaderboardOptionsForm(request.GET)
    context: dict[str, Any] = {"project": project, "form": form}
    status = 200
    if form.is_valid():
        context.update(board_context(project, **form.options()))
    else:
        status = 400
    template = f"{TEMPLATE}#board" if getattr(request, "htmx", False) else TEMPLATE
    return render(request, template, context, status=status)


def board_context(
    project: Project, *, source: Source, include_excluded: bool, length_control: bool
) -> dict[str, Any]:
    board = project_leaderboard(
        project=project,
        source=source,
        include_excluded=include_excluded,
        length_control=length_control,
    )
    body = leaderboard_body(board, source=source.value, include_excluded=include_excluded)
    names = [row["name"] for row in body["models"]]
    matrix = [
        {
            "name": name,
            "cells": [
                {
                    "opponent": opponent,
                    "rate": rate,
                    "count": count,
                    "heat": None if rate is None else round(rate * HEAT_STEPS),
                }
                for opponent, rate, count in zip(
                    names, body["win_rate"][index], body["pair_comparisons"][index], strict=True
                )
            ],
        }
        for index, name in enumerate(names)
    ]
    return {
        "board": body,
        "chart": chart.interval_chart(board),
        "matrix": matrix,
        "percent": round(board.confidence * 100),
    }


def _project_for(request: HttpRequest, project_id: int) -> Project:
    try:
        return labeling_selectors.project_for_user(
            user=request.user, project_id=project_id, roles=labeling_selectors.DATA_ROLES
        )
    except NotFound as error:
        raise Http404(error.message) from None
    except NotAllowed as error:
        raise PermissionDenied(error.message) from None
