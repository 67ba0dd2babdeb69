"""The facts of an export's dataset card (`exports.card`), read from the project, its raters'
flags and memberships, and its agreement runs, as they stand when the export is made."""

from __future__ import annotations

from typing import Any

from core.jobs import JobStatus
from exports.card import AgreementFacts, CardFacts, CardTally, DataFile, Figure
from exports.formats import format_spec
from exports.models import ExportJob, PairStrategy
from exports.params import PARAMS
from labeling.models import Membership, Project
from rankings.models import AgreementRun, Flag, FlagCode, FlagStatus
from rankings.quality.dashboard import STATISTIC_LABELS
from rankings.stats.project import PROJECT_STATISTICS


def card_facts(
    *, job: ExportJob, params: dict[str, Any], files: tuple[DataFile, ...], tally: CardTally
) -> CardFacts:
    """Everything the card says about an export: `params` are the parameters it ran with
    (pinned to its snapshot), `files` its data files, `tally` who its rows come from."""
    project = job.project
    spec = format_spec(job.format)
    columns = spec.columns_with(
        params["with_metadata"],
        params["soft_labels"],
        params.get("source", "human") != "human",
    )
    flags = _open_flags(project)
    return CardFacts(
        project_name=project.name,
        guidelines=project.guidelines,
        format=spec.name,
        format_label=spec.label,
        format_summary=spec.summary,
        format_tags=spec.tags,
        strategy_label=PairStrategy(job.strategy).label,
        container=job.container,
        columns=tuple((column.name, column.type.value) for column in columns),
        parameters=_parameters(job, params),
        rows=job.rows,
        prompts=job.prompts,
        files=files,
        last_ranking_id=job.last_ranking_id,
        overlap=project.overlap,
        max_overlap=project.max_overlap,
        allow_ties=project.allow_ties,
        gold_rate=project.gold_rate,
        repeat_rate=project.repeat_rate,
        include_gold=bool(params["include_gold"]),
        raters=len(tally.rater_keys),
        rankings=tally.rankings,
        fewest_rankings=tally.fewest_rankings,
        most_rankings=tally.most_rankings,
        excluded_raters=Membership.objects.filter(project=project, excluded=True).count(),
        excluded_left_out=bool(params["exclude_excluded_raters"]),
        flagged_raters=len({rater for rater, _ in flags}),
        flagged_left_out=bool(params["exclude_flagged_raters"]),
        flags=_flag_counts(flags),
        soft_labels=bool(params["soft_labels"]),
        agreement=_agreement(project, up_to_ranking_id=job.last_ranking_id),
    )


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parameters(job: ExportJob, params: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    columns = {"format": job.format, "strategy": job.strategy, "container": job.container}
    return tuple(
        (param.name, _shown(columns[param.name] if param.name in columns else params[param.name]))
        for param in PARAMS
    )


def _open_flags(project: Project) -> list[tuple[int, str]]:
    return list(
        Flag.objects.filter(project=project, status=FlagStatus.OPEN)
        .values_list("rater_id", "code")
        .distinct()
    )


def _flag_counts(flags: list[tuple[int, str]]) -> tuple[tuple[str, int], ...]:
    raters_by_code: dict[str, set[int]] = {}
    for rater, code in flags:
        raters_by_code.setdefault(code, set()).add(rater)
    return tuple(
        (str(FlagCode(code).label), len(raters))
        for code, raters in sorted(raters_by_code.items())
        if code in FlagCode.values
    )


def _agreement(project: Project, *, up_to_ranking_id: int) -> AgreementFacts | None:
    """The newest finished run that saw no ranking newer than the export's snapshot, so
    the same data gives the same card whenever the export runs."""
    run = (
        AgreementRun.objects.filter(
            project=project, status=JobStatus.DONE, last_ranking_id__lte=up_to_ranking_id
        )
        .order_by("-last_ranking_id", "-id")
        .only("last_ranking_id", "n_rankings", "n_prompts", "metrics")
        .first()
    )
    if run is None:
        return None
    metrics = run.metrics
    figures = []
    for name in PROJECT_STATISTICS:
        interval = metrics.get(f"{name}_ci") or (None, None)
        label, unit_name = STATISTIC_LABELS.get(name, (name, "units"))
        figures.append(
            Figure(
                label=label,
                value=metrics.get(name),
                low=interval[0],
                high=interval[1],
                units=int(metrics.get(f"{name}_n_units") or 0),
                unit_name=unit_name,
            )
        )
    return AgreementFacts(
        last_ranking_id=run.last_ranking_id,
        rankings=run.n_rankings,
        prompts=run.n_prompts,
        raters=int(metrics.get("n_raters") or 0),
        figures=tuple(figures),
    )
