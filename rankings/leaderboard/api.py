"""``GET /api/projects/{id}/leaderboard/``: the project's models with Bradley-Terry strengths
(Davidson's ties), bootstrap intervals, wins, ties and losses, and the win-rate matrix."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ERROR_RESPONSES
from core.auth import signed_in_user
from labeling import selectors as labeling_selectors
from rankings.leaderboard.selectors import SOURCE_HELP, Source, project_leaderboard
from rankings.stats.leaderboard import Leaderboard


class LeaderboardQuerySerializer(serializers.Serializer):
    """The leaderboard's options; any other query parameter is refused, naming it."""

    source = serializers.ChoiceField(  # type: ignore[assignment]  # a field named "source"
        choices=[(source.value, help) for source, help in SOURCE_HELP.items()],
        default=Source.RANKINGS.value,
    )
    include_excluded = serializers.BooleanField(
        default=False, help_text="Count the rankings of raters the lead excluded."
    )
    length_control = serializers.BooleanField(
        default=False,
        help_text="Add the responses' relative length difference as a covariate: strengths "
        "at equal length, and the length effect reported.",
    )

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "keys"):
            unknown = sorted(set(data.keys()) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({unknown[0]: ["unknown parameter"]})
        return super().to_internal_value(data)


class ModelStandingSerializer(serializers.Serializer):
    rank = serializers.IntegerField(help_text="1 for the strongest model.")
    name = serializers.CharField()
    strength = serializers.FloatField(
        allow_null=True,
        help_text="Log-strength, mean 0 over the models: P(a beats b) / P(b beats a) = "
        "exp(strength_a - strength_b).",
    )
    interval = serializers.ListField(
        child=serializers.FloatField(),
        allow_null=True,
        help_text="Bootstrap percentile interval over prompts, [low, high].",
    )
    wins = serializers.FloatField(help_text="Prompt-level wins; a prompt's raters share one vote.")
    ties = serializers.FloatField()
    losses = serializers.FloatField()
    comparisons = serializers.FloatField(
        help_text="Prompt-level comparisons with other models (response pairs)."
    )


class LeaderboardSerializer(serializers.Serializer):
    source = serializers.ChoiceField(  # type: ignore[assignment]  # a field named "source"
        choices=[source.value for source in Source]
    )
    include_excluded = serializers.BooleanField()
    length_controlled = serializers.BooleanField()
    confidence = serializers.FloatField()
    resamples = serializers.IntegerField(help_text="Bootstrap resamples of prompts.")
    seed = serializers.IntegerField()
    n_prompts = serializers.IntegerField(help_text="Prompts with a comparison between models.")
    n_rankings = serializers.IntegerField(help_text="Rankings read (one per prompt: consensus).")
    tie_propensity = serializers.FloatField(
        allow_null=True, help_text="Davidson's nu: P(tie) / sqrt(P(a wins) P(b wins))."
    )
    length_effect = serializers.FloatField(
        allow_null=True,
        help_text="With length control: log-odds per unit of (len_a - len_b) / (len_a + len_b).",
    )
    length_effect_interval = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    models = ModelStandingSerializer(many=True, help_text="Strongest first.")
    win_rate = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
        help_text="win_rate[i][j]: share of model i's comparisons with model j it won, ties "
        "counting half (models in the order above; null where they never met).",
    )
    pair_comparisons = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()),
        help_text="Comparisons behind each win rate.",
    )
    converged = serializers.BooleanField()


def leaderboard_body(board: Leaderboard, *, source: str, include_excluded: bool) -> dict[str, Any]:
    """The API's (and the page's) plain view of a leaderboard."""
    return {
        "source": source,
        "include_excluded": include_excluded,
        "length_controlled": board.length_controlled,
        "confidence": board.confidence,
        "resamples": board.resamples,
        "seed": board.seed,
        "n_prompts": board.n_prompts,
        "n_rankings": board.n_rankings,
        "tie_propensity": board.tie_propensity,
        "length_effect": board.length_effect,
        "length_effect_interval": board.length_effect_interval,
        "models": [
            {
                "rank": rank,
                "name": row.name,
                "strength": row.strength,
                "interval": None if row.low is None else [row.low, row.high],
                "wins": row.wins,
                "ties": row.ties,
                "losses": row.losses,
                "comparisons": row.comparisons,
            }
            for rank, row in enumerate(board.models, start=1)
        ],
        "win_rate": board.win_rate,
        "pair_comparisons": board.comparisons,
        "converged": board.converged,
    }


class LeaderboardView(APIView):
    """Which model wins (leads and engineers): computed from the rankings now."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "source",
                enum=[source.value for source in Source],
                description="; ".join(f"{key}: {value}" for key, value in SOURCE_HELP.items())
                + " (default rankings).",
            ),
            OpenApiParameter("include_excluded", bool, description="Default false."),
            OpenApiParameter("length_control", bool, description="Default false."),
        ],
        responses={200: LeaderboardSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = labeling_selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=labeling_selectors.DATA_ROLES
        )
        query = LeaderboardQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        options = query.validated_data
        board = project_leaderboard(
            project=project,
            source=Source(options["source"]),
            include_excluded=options["include_excluded"],
            length_control=options["length_control"],
        )
        body = leaderboard_body(
            board, source=options["source"], include_excluded=options["include_excluded"]
        )
        return Response(LeaderboardSerializer(body).data)
