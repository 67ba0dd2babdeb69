"""Forms for the labeling pages: joining, creating and configuring projects, importing."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import MaxValueValidator, MinValueValidator

from labeling.importing import TOO_LARGE_ADVICE
from labeling.models import Project, Role
from labeling.rubric import HHH_PRESET, RubricProblem, clean_rubric


class JoinForm(forms.Form):
    username = forms.CharField(max_length=150)
    password = forms.CharField(widget=forms.PasswordInput, strip=False)


class ProjectCreateForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name", "description", "overlap", "allow_ties"]


class ProjectSettingsForm(forms.ModelForm):
    rubric = forms.CharField(
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 4, "spellcheck": "false", "data-preset-hhh": json.dumps(HHH_PRESET)}
        ),
        help_text="Scales and checkboxes shown under each response. Without JavaScript: a JSON "
        'list of {"key", "label", "kind": "scale" | "checkbox", "min", "max", "min_label", '
        '"max_label", "required"}, or "hhh" for the 1 to 7 HHH preset.',
    )

    class Meta:
        model = Project
        fields = [
            "name",
            "description",
            "guidelines",
            "overlap",
            "max_overlap",
            "adaptive_agreement_threshold",
            "lease_seconds",
            "allow_ties",
            "gold_rate",
            "repeat_rate",
            "repeat_delay_seconds",
            "require_rationale",
            "rubric",
            "agreement_every_n_rankings",
        ]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "guidelines": forms.Textarea(attrs={"rows": 6}),
        }

    # The same bounds as the API's ProjectSerializer: refused at the field, not left to the
    # database constraints (whose errors name no field).
    NUMBER_BOUNDS: dict[str, tuple[int, int]] = {
        "overlap": (1, 100),
        "max_overlap": (1, 100),
        "lease_seconds": (30, 86_400),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, (low, high) in self.NUMBER_BOUNDS.items():
            field = self.fields[name]
            field.validators += [MinValueValidator(low), MaxValueValidator(high)]
            field.widget.attrs.update(min=low, max=high)
        if self.instance and not self.is_bound:
            self.initial["rubric"] = (
                json.dumps(self.instance.rubric) if self.instance.rubric else ""
            )

    def clean_rubric(self) -> list[dict[str, Any]]:
        raw = (self.cleaned_data.get("rubric") or "").strip()
        if raw in ("", "hhh"):
            value: Any = raw
        else:
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as error:
                raise forms.ValidationError(f"not valid JSON: {error.msg}") from error
        try:
            return clean_rubric(value)
        except RubricProblem as problem:
            raise forms.ValidationError(str(problem)) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        overlap, max_overlap = cleaned.get("overlap"), cleaned.get("max_overlap")
        if overlap and max_overlap is not None and max_overlap < overlap:
            self.add_error("max_overlap", "must be at least the overlap")
        for name in ("gold_rate", "repeat_rate", "adaptive_agreement_threshold"):
            value = cleaned.get(name)
            if value is not None and not 0 <= value <= 1:
                self.add_error(name, "must be between 0 and 1")
        return cleaned


class InviteForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices, initial=Role.RATER)


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSON list or JSON Lines, as for the API.")

    def clean_file(self) -> UploadedFile:
        upload: UploadedFile = self.cleaned_data["file"]
        limit = settings.IMPORT_MAX_BYTES
        if (upload.size or 0) > limit:
            raise forms.ValidationError(
                f"the file is larger than {limit // 2**20} MB; {TOO_LARGE_ADVICE}"
            )
        return upload


class MemberActionForm(forms.Form):
    action = forms.ChoiceField(
        choices=[
            ("pause", "Pause"),
            ("resume", "Resume"),
            ("exclude", "Exclude"),
            ("include", "Include"),
        ]
    )


class GoldForm(forms.Form):
    prompt = forms.CharField(max_length=200, help_text="Prompt id or external id.")
    ranking = forms.CharField(
        max_length=100,
        required=False,
        help_text='Responses in import order as A, B, C…: "A > B = C > D". Empty: not gold.',
    )
