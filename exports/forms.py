"""The lead's export form: format, strategy, container, filters and split."""

from __future__ import annotations

from typing import Any

from django import forms

from exports.models import Container, ExportFormat, ExportJob, ExportStatus, PairStrategy
from exports.services import PARAM_DEFAULTS


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=ExportFormat.choices, initial=ExportFormat.TRL)
    strategy = forms.ChoiceField(choices=PairStrategy.choices, initial=PairStrategy.ALL_PAIRS)
    container = forms.ChoiceField(choices=Container.choices, initial=Container.JSONL)
    with_metadata = forms.BooleanField(
        required=False, initial=True, label="Metadata columns (ids, models, agreement, …)"
    )
    include_ties = forms.BooleanField(required=False, label="Include ties (margin 0)")
    min_agreement = forms.FloatField(
        min_value=0.0,
        max_value=1.0,
        initial=0.0,
        label="Minimum pair agreement",
        widget=forms.NumberInput(attrs={"step": "0.05"}),
        help_text="Share of the prompt's raters ordering the pair the same way, 0 to 1.",
    )
    min_raters = forms.IntegerField(min_value=1, max_value=1000, initial=1, label="Minimum raters")
    exclude_flagged_raters = forms.BooleanField(
        required=False, label="Leave out raters with an open quality flag"
    )
    exclude_excluded_raters = forms.BooleanField(
        required=False, initial=True, label="Leave out excluded raters"
    )
    include_gold = forms.BooleanField(required=False, label="Include gold prompts")
    only_complete = forms.BooleanField(required=False, label="Only prompts with complete overlap")
    created_after = forms.DateTimeField(
        required=False,
        label="Rankings created after",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
    )
    since_export = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        label="Only prompts not in export",
        help_text="Incremental: leave out what an earlier export (and those it continued) had.",
    )
    test_fraction = forms.FloatField(
        min_value=0.0,
        max_value=0.99,
        initial=0.0,
        label="Test fraction",
        widget=forms.NumberInput(attrs={"step": "0.05"}),
        help_text="Share of prompts held out for testing; 0 means no split.",
    )
    seed = forms.IntegerField(min_value=0, initial=0, label="Split seed")

    def __init__(self, *args: Any, earlier_jobs: list[ExportJob] = (), **kwargs: Any) -> None:  # type: ignore[assignment]
        super().__init__(*args, **kwargs)
        field = self.fields["since_export"]
        assert isinstance(field, forms.TypedChoiceField)
        field.choices = [("", "— all prompts —")] + [
            (job.pk, f"#{job.pk} · {job.format} · {job.rows} rows")
            for job in earlier_jobs
            if job.status == ExportStatus.DONE
        ]

    def export_arguments(self) -> dict[str, Any]:
        """format/strategy/container and the params dict, as the services take them."""
        data = dict(self.cleaned_data)
        arguments = {name: data.pop(name) for name in ("format", "strategy", "container")}
        params = {name: value for name, value in data.items() if name in PARAM_DEFAULTS}
        return {**arguments, "params": params}
