"""Dict rows and their canonical JSON line: the reference rendering of a format spec.

The fast writers (`exports.formats.jsonl`, `exports.formats.arrow`) produce exactly these
rows, which the tests hold them to; the OpenAPI examples show them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from exports.formats.registry import format_spec
from exports.formats.spec import PROMPT_SOURCES, Source
from exports.pairs import Pair, PromptData

Row = dict[str, Any]


def encode_row(row: Row) -> bytes:
    """One canonical JSON line: `orjson.dumps(row)` plus a newline.

    Compact UTF-8 JSON (no spaces, non-ASCII kept as is), keys in insertion order, floats in
    their shortest round-trip form: for export rows the same text as Python's
    `json.dumps(row, ensure_ascii=False, separators=(",", ":"))`.
    """
    return orjson.dumps(row) + b"\n"


def pair_value(value: Any) -> Any:
    """A pair field as a row value: tuples (rater keys) become lists."""
    return list(value) if isinstance(value, tuple) else value


def rows_for_pairs(
    fmt: str,
    pairs: Iterable[Pair],
    prompt: PromptData,
    split: str,
    with_metadata: bool = True,
    soft_labels: bool = False,
    source_column: bool = False,
) -> list[Row]:
    """The rows of one prompt's pairs in format `fmt` (two rows a pair for unpaired formats)."""
    spec = format_spec(fmt)
    columns = spec.columns_with(with_metadata, soft_labels, source_column)
    of_prompt = {
        column.name: column.prompt_value(prompt, split)
        for column in columns
        if column.source in PROMPT_SOURCES
    }
    pair_indexes = {
        column.name: column.pair_index for column in columns if column.source is Source.PAIR
    }
    output: list[Row] = []
    for pair in pairs:
        sides = (pair.chosen_id, pair.rejected_id)
        for row_index in range(spec.rows_per_pair):
            row: Row = {}
            for column in columns:
                source = column.source
                if source in PROMPT_SOURCES:
                    value = of_prompt[column.name]
                elif source is Source.PAIR:
                    value = pair_value(pair[pair_indexes[column.name]])
                elif source is Source.LABEL:
                    value = row_index == 0
                else:
                    response_id = (
                        sides[row_index]
                        if source is Source.COMPLETION
                        else sides[source is Source.REJECTED]
                    )
                    value = column.response_value(prompt, prompt.responses[response_id])
                row[column.name] = value
            output.append(row)
    return output
