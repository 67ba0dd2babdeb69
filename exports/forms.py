"""The lead's export form, built from the parameter registry (`exports.params.PARAMS`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms

from core.jobs import JobStatus
from exports.models import ExportJob
from exports.params import JOB_PARAMS, PARAMS, ExportParam, Kind, Scope

FIELDSETS = (
    ("Rows", (Scope.JOB, Scope.SHAPE)),
    ("Filters", (Scope.PAIRS, Scope.ROWS)),
    ("Train/test split", (Scope.SPLIT,)),
)
"""The page's fieldsets: a legend and the scopes of the parameters under it."""
TIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]


def form_field(param: ExportParam) -> forms.Field:
    """The form field of a parameter: its type, range, initial value, label and help."""
    common: dict[str, Any] = {"label": param.label, "help_text": param.help}
    required = param.default is not None
    if param.kind is Kind.BOOLEAN:
        return forms.BooleanField(required=False, initial=param.default, **common)
    if param.kind is Kind.CHOICE:
        return forms.ChoiceField(choices=param.choices, initial=param.default, **common)
    if param.kind is Kind.TIME:
        return forms.DateTimeField(
            required=False,
            widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
            input_formats=TIME_FORMATS,
            **common,
        )
    if param.kind is Kind.EXPORT:
        # Its choices are the project's finished exports, set by the form.
        return forms.TypedChoiceField(required=False, coerce=int, empty_value=None, **common)
    low, high = param.minimum, param.maximum
    if param.kind is Kind.INTEGER:
        return forms.IntegerField(
            required=required,
            initial=param.default,
            min_value=None if low is None else int(low),
            max_value=None if high is None else int(high),
            **common,
        )
    fraction = low == 0 and high is not None and high <= 1
    return forms.FloatField(
        required=required,
        initial=param.default,
        widget=forms.NumberInput(attrs={"step": "0.05" if fraction else "any"}),
        min_value=low,
        max_value=high,
        **common,
    )


class ExportForm(forms.Form):
    def __init__(self, *args: Any, earlier_jobs: Sequence[ExportJob] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in PARAMS:
            if param.in_form:
                self.fields[param.name] = form_field(param)
                if param.kind is Kind.EXPORT:
                    self._earlier_exports(param.name, earlier_jobs)

    def _earlier_exports(self, name: str, earlier_jobs: Sequence[ExportJob]) -> None:
        field = self.fields[name]
        assert isinstance(field, forms.TypedChoiceField)
        field.choices = [("", "— all prompts —")] + [
            (job.pk, f"#{job.pk} · {job.format} · {job.rows} rows")
            for job in earlier_jobs
            if job.status == JobStatus.DONE
        ]

    def fieldsets(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [
            (
                legend,
                [self[param.name] for param in PARAMS if param.in_form and param.scope in scopes],
            )
            for legend, scopes in FIELDSETS
        ]

    def export_arguments(self) -> dict[str, Any]:
        """format/strategy/container and the params dict, as the services take them."""
        data = dict(self.cleaned_data)
        arguments = {param.name: data.pop(param.name) for param in JOB_PARAMS}
        return {**arguments, "params": data}
