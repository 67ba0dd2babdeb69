"""The portable reader (SQLite, the embedded default, and the tests' twin of the
PostgreSQL path): the ORM in id order, in chunks, into compact arrays."""

from __future__ import annotations

from array import array

import numpy as np
from django.db.models import QuerySet

from labeling.models import Project, Response
from rankings.models import Ranking
from rankings.runs.raw import PromptRange, RawRankings, padded

BATCH_SIZE = 20_000


def rankings_of_counted_raters(
    *,
    project: Project,
    up_to_id: int | None,
    excluded: list[int],
    prompts: PromptRange | None = None,
) -> QuerySet[Ranking]:
    """The project's rankings up to ``up_to_id``, excluded raters left out; only those of
    the prompts in the range, given one."""
    rankings = Ranking.objects.filter(project=project).exclude(rater_id__in=excluded)
    if up_to_id is not None:
        rankings = rankings.filter(id__lte=up_to_id)
    if prompts is not None:
        rankings = rankings.filter(prompt_id__gt=prompts[0], prompt_id__lte=prompts[1])
    return rankings


def read_rankings(
    *,
    project: Project,
    up_to_id: int | None,
    excluded: list[int],
    prompts: PromptRange | None = None,
) -> RawRankings:
    scalars: dict[str, array[int]] = {
        name: array("q") for name in ("ranking_ids", "prompt_ids", "rater_ids", "is_repeat")
    }
    seconds = array("d")
    group_ids: list[list[int]] = []
    group_levels: list[list[int]] = []
    shown_ids: list[list[int]] = []
    rankings = (
        rankings_of_counted_raters(
            project=project, up_to_id=up_to_id, excluded=excluded, prompts=prompts
        )
        .order_by("id")
        .values_list(
            "id", "prompt_id", "rater_id", "is_repeat", "seconds", "groups",
            "assignment__shown_order",
        )
        .iterator(chunk_size=BATCH_SIZE)
    )  # fmt: skip
    for ranking_id, prompt_id, rater_id, repeat, spent, groups, shown in rankings:
        scalars["ranking_ids"].append(ranking_id)
        scalars["prompt_ids"].append(prompt_id)
        scalars["rater_ids"].append(rater_id)
        scalars["is_repeat"].append(bool(repeat))
        seconds.append(float("nan") if spent is None else spent)
        group_ids.append([int(item) for group in groups for item in group])
        group_levels.append([level for level, group in enumerate(groups, 1) for _ in group])
        shown_ids.append([int(item) for item in shown or []])
    responses: dict[str, array[int]] = {
        name: array("q")
        for name in ("response_ids", "response_prompts", "response_positions", "response_lengths")
    }
    responses_of = Response.objects.filter(prompt__project=project)
    if prompts is not None:
        responses_of = responses_of.filter(prompt_id__gt=prompts[0], prompt_id__lte=prompts[1])
    rows = responses_of.values_list("id", "prompt_id", "position", "text_length").iterator(
        chunk_size=BATCH_SIZE
    )
    for response_id, prompt_id, position, length in rows:
        responses["response_ids"].append(response_id)
        responses["response_prompts"].append(prompt_id)
        responses["response_positions"].append(position)
        responses["response_lengths"].append(length or 0)
    arrays = {name: np.frombuffer(values, dtype=np.int64) for name, values in scalars.items()}
    return RawRankings(
        ranking_ids=arrays["ranking_ids"],
        prompt_ids=arrays["prompt_ids"],
        rater_ids=arrays["rater_ids"],
        is_repeat=arrays["is_repeat"].astype(bool),
        seconds=np.frombuffer(seconds, dtype=np.float64),
        group_ids=padded(group_ids, -1, np.int64),
        group_levels=padded(group_levels, 0, np.int8),
        shown_ids=padded(shown_ids, -1, np.int64).__getitem__,
        **{name: np.frombuffer(values, dtype=np.int64) for name, values in responses.items()},
    )
