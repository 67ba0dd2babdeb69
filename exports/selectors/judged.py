"""An AI judge's verdicts as export input (`source` ai or both): the judged prompts in
keyset batches, and their merge with the human reading, prompt by prompt in id order.

One portable ORM reading on every database, so the PostgreSQL fast path and the portable
path give the same batches: the human side is `prompt_batches` as always (held to each
other by the tests), the AI side is this. A verdict naming responses its prompt no longer
has (edited after judging) is left out rather than exported wrong.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Generator, Iterator
from typing import NamedTuple

from exports.pairs import PromptData, RankingData, ResponseData
from exports.selectors.filters import ExportFilters, prompts_read
from exports.selectors.reading import PromptRankings
from labeling.models import Project, Response
from llm.models import CallStatus, JudgeVerdict

ORDER_NAMES = ("original", "reversed")


class JudgeData(NamedTuple):
    verdict: RankingData
    """The judge's combined ranking of the prompt."""
    orders: list[RankingData]
    """Its verdicts in each shown order (original, reversed)."""


JudgedPrompt = tuple[PromptData, JudgeData]
SourcedPrompt = tuple[PromptData, list[RankingData], JudgeData | None]
"""A prompt, its human rankings read (maybe none) and the judge's verdict (maybe none)."""


def judge_rater_key(endpoint_id: int, order: str = "") -> str:
    """The rater key of an AI judge (and of one of its shown orders) in exported rows."""
    return f"ai-{endpoint_id}" + (f"-{order}" if order else "")


def judged_prompt_count(*, project: Project, filters: ExportFilters, endpoint_id: int) -> int:
    """Prompts with a verdict of `endpoint_id` the prompt filters keep (for the estimate)."""
    judged = JudgeVerdict.objects.filter(endpoint_id=endpoint_id, status=CallStatus.DONE)
    return (
        prompts_read(project=project, filters=filters)
        .filter(pk__in=judged.values("prompt_id"))
        .count()
    )


def judged_prompt_batches(
    *, project: Project, filters: ExportFilters, endpoint_id: int, batch_size: int
) -> Iterator[list[JudgedPrompt]]:
    """The prompts `endpoint_id` judged that the prompt filters keep, by primary key."""
    judged = JudgeVerdict.objects.filter(endpoint_id=endpoint_id, status=CallStatus.DONE)
    prompts = prompts_read(project=project, filters=filters).filter(
        pk__in=judged.values("prompt_id")
    )
    skip = filters.skip_prompt_ids
    last_id = 0
    while True:
        rows = list(
            prompts.filter(pk__gt=last_id)
            .order_by("pk")
            .values_list("id", "external_id", "messages")[:batch_size]
        )
        if not rows:
            return
        last_id = rows[-1][0]
        ids = [prompt_id for prompt_id, _, _ in rows if prompt_id not in skip]
        responses: dict[int, dict[int, ResponseData]] = defaultdict(dict)
        for response_id, prompt_id, external_id, text, model_name in (
            Response.objects.filter(prompt_id__in=ids)
            .order_by("prompt_id", "position", "id")
            .values_list("id", "prompt_id", "external_id", "text", "model_name")
        ):
            responses[prompt_id][response_id] = ResponseData(
                response_id, external_id, text, model_name
            )
        verdicts = {
            prompt_id: (groups, forward, reverse)
            for prompt_id, groups, forward, reverse in judged.filter(prompt_id__in=ids).values_list(
                "prompt_id", "groups", "forward", "reverse"
            )
        }
        batch = []
        for prompt_id, external_id, messages in rows:
            if prompt_id not in verdicts or prompt_id not in responses:
                continue
            prompt = PromptData(prompt_id, external_id, messages, responses[prompt_id])
            judge = _judge_data(prompt, endpoint_id, *verdicts[prompt_id])
            if judge is not None:
                batch.append((prompt, judge))
        yield batch


def _judge_data(
    prompt: PromptData,
    endpoint_id: int,
    groups: list[list[int]],
    forward: list[list[int]],
    reverse: list[list[int]],
) -> JudgeData | None:
    """The verdict as rankings, or None when it does not rank exactly the prompt's responses."""
    ids = set(prompt.responses)

    def ranking(key: str, tie_groups: list[list[int]]) -> RankingData | None:
        clean = [[int(member) for member in group] for group in tie_groups if group]
        members = [member for group in clean for member in group]
        if len(members) != len(set(members)) or set(members) != ids:
            return None
        return RankingData(0, prompt.prompt_id, key, clean)

    verdict = ranking(judge_rater_key(endpoint_id), groups)
    if verdict is None:
        return None
    orders = [
        ranking(judge_rater_key(endpoint_id, name), order)
        for name, order in zip(ORDER_NAMES, (forward, reverse), strict=True)
    ]
    kept = [order for order in orders if order is not None]
    # A verdict without both orders (recorded before they were kept) counts as one order.
    return JudgeData(verdict, kept if len(kept) == len(orders) else [verdict])


def sourced_batches(
    *,
    human: Iterator[list[PromptRankings]] | None,
    judged: Iterator[list[JudgedPrompt]] | None,
    batch_size: int,
) -> Generator[list[SourcedPrompt]]:
    """The two readings merged by prompt id (both walk prompts in id order), re-batched."""
    merged = _merged(_flat(human), _flat(judged))
    try:
        batch: list[SourcedPrompt] = []
        for item in merged:
            batch.append(item)
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch
    finally:
        merged.close()
        for source in (human, judged):
            close = getattr(source, "close", None)
            if close is not None:
                close()


def _flat[T](batches: Iterator[list[T]] | None) -> Iterator[T]:
    for batch in batches or ():
        yield from batch


def _merged(
    human: Iterator[PromptRankings], judged: Iterator[JudgedPrompt]
) -> Generator[SourcedPrompt]:
    next_human, next_judged = next(human, None), next(judged, None)
    while next_human is not None or next_judged is not None:
        human_id = next_human[0].prompt_id if next_human is not None else _PAST_LAST_ID
        judged_id = next_judged[0].prompt_id if next_judged is not None else _PAST_LAST_ID
        if human_id < judged_id:
            assert next_human is not None
            yield next_human[0], next_human[1], None
            next_human = next(human, None)
        elif judged_id < human_id:
            assert next_judged is not None
            yield next_judged[0], [], next_judged[1]
            next_judged = next(judged, None)
        else:
            assert next_human is not None and next_judged is not None
            yield next_human[0], next_human[1], next_judged[1]
            next_human, next_judged = next(human, None), next(judged, None)


_PAST_LAST_ID = 2**63
