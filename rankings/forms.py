"""Forms for the rater's ranking page: shape checks only; rankings.services judges the ranking."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS

from rankings.validation import MAX_RATIONALE_CHARS

RANK_FIELD_PREFIX = "rank_"


class RankingForm(forms.Form):
    """A ranking as JSON tie groups (set by rank.js), or one rank number per response.

    The per-response numbers are the no-JavaScript fallback: equal numbers form a tie group.
    """

    ranking = forms.CharField(required=False, widget=forms.HiddenInput)
    rationale = forms.CharField(
        required=False, max_length=MAX_RATIONALE_CHARS, widget=forms.Textarea(attrs={"rows": 2})
    )
    seconds = forms.FloatField(required=False, min_value=0, max_value=86_400)

    def __init__(self, *args: Any, shown_ids: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shown_ids = [int(response_id) for response_id in shown_ids]
        choices = [("", "rank?")] + [
            (str(rank), str(rank)) for rank in range(1, len(shown_ids) + 1)
        ]
        for response_id in self.shown_ids:
            self.fields[f"{RANK_FIELD_PREFIX}{response_id}"] = forms.TypedChoiceField(
                choices=choices, coerce=int, required=False, empty_value=None
            )

    def clean_ranking(self) -> Any:
        raw = self.cleaned_data["ranking"].strip()
        if not raw:
            return None
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise forms.ValidationError("is not valid JSON") from None
        if not isinstance(parsed, list):
            raise forms.ValidationError("must be a list of tie groups")
        return parsed

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("ranking") is None and not self.errors:
            cleaned["ranking"] = self._groups_from_rank_numbers(cleaned)
        return cleaned

    def _groups_from_rank_numbers(self, cleaned: dict[str, Any]) -> list[list[int]]:
        by_rank: dict[int, list[int]] = {}
        for response_id in self.shown_ids:
            rank = cleaned.get(f"{RANK_FIELD_PREFIX}{response_id}")
            if rank is None:
                raise forms.ValidationError("give every response a rank before submitting")
            by_rank.setdefault(rank, []).append(response_id)
        return [by_rank[rank] for rank in sorted(by_rank)]


class SkipForm(forms.Form):
    reason = forms.CharField(
        max_length=500, error_messages={"required": "say why you skip this task"}
    )


def first_error(form: forms.Form) -> str:
    """One line for the rater: the first problem, named by its field."""
    for field, errors in form.errors.items():
        message = str(errors[0])
        return message if field == NON_FIELD_ERRORS else f"{field}: {message}"
    return ""
