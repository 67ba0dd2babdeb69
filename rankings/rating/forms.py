"""Forms for the rater's ranking page: the page's fields turned into one ranking submission.

They check what the page checks and name what is missing by the labels the rater sees
(A, B, C…); rankings.rating.services checks the same rules again for every client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django import forms

from labeling.models import Assignment
from labeling.rubric import clean_rubric
from rankings.rating.validation import MAX_RATIONALE_CHARS

RANK_FIELD_PREFIX = "rank_"
TIE = "tie"
STRENGTH_LABELS = {3: "Much better", 2: "Better", 1: "Slightly better", 0: "About the same"}


def rating_field_name(response_id: int, key: str) -> str:
    return f"rating-{response_id}-{key}"


def response_label(index: int) -> str:
    return chr(ord("A") + index)


def join_labels(labels: list[str]) -> str:
    """ "A", "A and C", "A, B and D"."""
    if len(labels) <= 1:
        return "".join(labels)
    return f"{', '.join(labels[:-1])} and {labels[-1]}"


@dataclass(frozen=True)
class TaskRules:
    """What a submission for one task must satisfy: the project's settings and shown order."""

    shown_ids: list[int]
    rubric: list[dict[str, Any]]
    allow_ties: bool
    require_rationale: bool

    @classmethod
    def for_assignment(cls, assignment: Assignment) -> TaskRules:
        project = assignment.project
        return cls(
            shown_ids=[int(response_id) for response_id in assignment.shown_order],
            rubric=clean_rubric(project.rubric),
            allow_ties=project.allow_ties,
            require_rationale=project.require_rationale,
        )

    @property
    def pairwise(self) -> bool:
        return len(self.shown_ids) == 2

    def label(self, response_id: int) -> str:
        return response_label(self.shown_ids.index(response_id))


class RankingForm(forms.Form):
    """A ranking from the page, in any of three shapes, plus ratings and a rationale.

    - `preference` (pairwise tasks): the id of the better response, or "tie", with a
      `strength` of 3 much better, 2 better, 1 slightly better, 0 about the same;
    - `rank_<id>`: a rank number per response (the ranking page, with or without
      JavaScript); equal numbers form a tie group;
    - `ranking`: JSON tie groups of response ids, best first.
    Ratings come as `rating-<id>-<key>` fields, one per response and rubric item.
    """

    ranking = forms.CharField(required=False, widget=forms.HiddenInput)
    preference = forms.CharField(required=False, max_length=20)
    strength = forms.TypedChoiceField(
        choices=[(str(value), label) for value, label in STRENGTH_LABELS.items()],
        coerce=int,
        required=False,
        empty_value=None,
        error_messages={"invalid_choice": "Strength must be 0, 1, 2 or 3."},
    )
    rationale = forms.CharField(
        required=False,
        max_length=MAX_RATIONALE_CHARS,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={
            "max_length": f"The rationale must be at most {MAX_RATIONALE_CHARS} characters."
        },
    )
    seconds = forms.FloatField(
        required=False,
        min_value=0,
        max_value=86_400,
        error_messages={
            "invalid": "Seconds must be a number.",
            "min_value": "Seconds must be between 0 and 86400.",
            "max_value": "Seconds must be between 0 and 86400.",
        },
    )

    def __init__(self, *args: Any, rules: TaskRules, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rules = rules
        rank_choices = [(str(rank), str(rank)) for rank in range(1, len(rules.shown_ids) + 1)]
        for response_id in rules.shown_ids:
            label = rules.label(response_id)
            self.fields[f"{RANK_FIELD_PREFIX}{response_id}"] = forms.TypedChoiceField(
                choices=[("", "rank?"), *rank_choices],
                coerce=int,
                required=False,
                empty_value=None,
                error_messages={
                    "invalid_choice": f"The rank of {label} must be from 1 to "
                    f"{len(rules.shown_ids)}."
                },
            )
            for item in rules.rubric:
                name = rating_field_name(response_id, item["key"])
                if item["kind"] == "checkbox":
                    self.fields[name] = forms.BooleanField(required=False)
                    continue
                low, high = item["min"], item["max"]
                self.fields[name] = forms.TypedChoiceField(
                    choices=[("", "—")] + [(str(v), str(v)) for v in range(low, high + 1)],
                    coerce=int,
                    required=False,
                    empty_value=None,
                    error_messages={
                        "invalid_choice": f"{item['label']} for {label} must be a whole number "
                        f"from {low} to {high}."
                    },
                )

    def clean_ranking(self) -> Any:
        raw = self.cleaned_data["ranking"].strip()
        if not raw:
            return None
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise forms.ValidationError("The ranking is not valid JSON.") from None
        if not isinstance(parsed, list):
            raise forms.ValidationError("The ranking must be a list of tie groups.")
        return parsed

    def clean(self) -> dict[str, Any]:
        super().clean()
        if self.errors:
            return self.cleaned_data
        cleaned = self.cleaned_data
        problems: list[str] = []
        groups = cleaned.get("ranking")
        if groups is None and self.rules.pairwise and not self._has_rank_numbers():
            groups = self._groups_from_preference(cleaned, problems)
        elif groups is None:
            groups = self._groups_from_rank_numbers(cleaned, problems)
        if groups is not None and self.rules.pairwise:
            cleaned["strength"] = self._clean_pairwise_strength(groups, cleaned, problems)
        cleaned["groups"] = groups
        cleaned["ratings"] = self._ratings(cleaned, problems)
        cleaned["rationale"] = (cleaned.get("rationale") or "").strip()
        if self.rules.require_rationale and not cleaned["rationale"]:
            problems.append("Write a short rationale: this project asks for one.")
        if problems:
            raise forms.ValidationError(problems)
        return cleaned

    def _has_rank_numbers(self) -> bool:
        return any(
            self.cleaned_data.get(f"{RANK_FIELD_PREFIX}{response_id}") is not None
            for response_id in self.rules.shown_ids
        )

    def _groups_from_rank_numbers(
        self, cleaned: dict[str, Any], problems: list[str]
    ) -> list[list[int]] | None:
        by_rank: dict[int, list[int]] = {}
        unranked: list[str] = []
        for response_id in self.rules.shown_ids:
            rank = cleaned.get(f"{RANK_FIELD_PREFIX}{response_id}")
            if rank is None:
                unranked.append(self.rules.label(response_id))
            else:
                by_rank.setdefault(rank, []).append(response_id)
        if unranked:
            verb = "has" if len(unranked) == 1 else "have"
            problems.append(f"Rank every response: {join_labels(unranked)} {verb} no rank yet.")
            return None
        if not self.rules.allow_ties:
            for rank, members in sorted(by_rank.items()):
                if len(members) > 1:
                    labels = join_labels([self.rules.label(member) for member in members])
                    problems.append(
                        f"Ties are not allowed in this project: {labels} share rank {rank}."
                    )
                    return None
        return [by_rank[rank] for rank in sorted(by_rank)]

    def _groups_from_preference(
        self, cleaned: dict[str, Any], problems: list[str]
    ) -> list[list[int]] | None:
        first, second = self.rules.shown_ids
        choice = (cleaned.get("preference") or "").strip()
        if choice == TIE:
            if not self.rules.allow_ties:
                problems.append("Ties are not allowed in this project: choose A or B.")
                return None
            return [[first, second]]
        if choice == str(first):
            return [[first], [second]]
        if choice == str(second):
            return [[second], [first]]
        if choice:
            problems.append("Choose A or B: the answer given is not one of this task's responses.")
        else:
            same = " or say they are about the same" if self.rules.allow_ties else ""
            problems.append(f"Choose the better response: A or B{same}.")
        return None

    def _clean_pairwise_strength(
        self, groups: list[list[int]], cleaned: dict[str, Any], problems: list[str]
    ) -> int | None:
        strength = cleaned.get("strength")
        if len(groups) == 1:
            if strength not in (None, 0):
                problems.append("A tie goes with “about the same”, not with a strength.")
            return 0
        better = self.rules.label(groups[0][0])
        if strength is None:
            problems.append(
                f"Say how much better {better} is: much better, better or slightly better."
            )
        elif strength == 0:
            problems.append(
                f"“About the same” is a tie: choose the tie, or say how much better {better} is."
            )
        return strength

    def _ratings(self, cleaned: dict[str, Any], problems: list[str]) -> dict[str, dict[str, Any]]:
        ratings: dict[str, dict[str, Any]] = {}
        missing: dict[str, list[str]] = {}
        for response_id in self.rules.shown_ids:
            given: dict[str, Any] = {}
            for item in self.rules.rubric:
                value = cleaned.get(rating_field_name(response_id, item["key"]))
                if item["kind"] == "checkbox":
                    given[item["key"]] = bool(value)
                elif value is not None:
                    given[item["key"]] = value
                elif item["required"]:
                    missing.setdefault(item["label"], []).append(self.rules.label(response_id))
            if given:
                ratings[str(response_id)] = given
        for item_label, labels in missing.items():
            problems.append(f"{item_label} is required: rate {join_labels(labels)}.")
        return ratings


class SkipForm(forms.Form):
    """Why the rater skips: one of the offered reasons, or their own words."""

    reason = forms.CharField(required=False, max_length=500)
    reason_other = forms.CharField(required=False, max_length=500)

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        reason = (cleaned.get("reason") or "").strip()
        if reason in ("", "other"):
            reason = (cleaned.get("reason_other") or "").strip()
        if not reason:
            raise forms.ValidationError("Say why you skip this task.")
        cleaned["reason"] = reason
        return cleaned


def form_problems(form: forms.Form) -> list[str]:
    """Every problem of a bound form, as the sentences the rater reads."""
    return [str(error) for errors in form.errors.values() for error in errors]
