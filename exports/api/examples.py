"""OpenAPI examples: a request and the row it produces, for every export format.

The rows are rendered by the real format writers from one sample prompt, so the schema
cannot drift from what exports contain.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample

from exports.formats import FORMATS, FormatSpec, encode_row, rows_for_pairs
from exports.pairs import Pair, PromptData, ResponseData

SAMPLE_PROMPT = PromptData(
    prompt_id=42,
    external_id="sky-blue",
    messages=[
        {"role": "system", "content": "Answer in one sentence."},
        {"role": "user", "content": "Why is the sky blue?"},
    ],
    responses={
        101: ResponseData(101, "sky-blue-a", "Air scatters short blue wavelengths most.", "m-a"),
        102: ResponseData(102, "sky-blue-b", "It reflects the ocean.", "m-b"),
    },
    scores={101: 10.0, 102: 1.0},
)
SAMPLE_PAIR = Pair(42, 101, 102, 1.0, 1.0, 3, ("3f9c0a1d2b4e5f60",))


def sample_rows(spec: FormatSpec, with_metadata: bool = False) -> list[dict[str, Any]]:
    return rows_for_pairs(spec.name, [SAMPLE_PAIR], SAMPLE_PROMPT, "train", with_metadata)


def create_examples() -> list[OpenApiExample]:
    examples = [
        OpenApiExample(
            f"{spec.name} export",
            summary=spec.summary,
            description="One row of the file (metadata off): `"
            + encode_row(sample_rows(spec)[0]).decode().strip()
            + "`",
            value={"format": spec.name, "strategy": "all_pairs", "container": "jsonl"},
            request_only=True,
        )
        for spec in FORMATS
    ]
    examples.append(
        OpenApiExample(
            "Filtered, split Parquet export",
            summary="Consensus pairs, agreed by 2/3, no flagged raters, 10% test split",
            value={
                "format": "trl-conversational",
                "strategy": "consensus",
                "container": "parquet",
                "min_agreement": 0.66,
                "min_raters": 3,
                "exclude_flagged_raters": True,
                "test_fraction": 0.1,
                "seed": 7,
            },
            request_only=True,
        )
    )
    return examples


def stream_examples() -> list[OpenApiExample]:
    return [
        OpenApiExample(
            f"{spec.name} rows",
            summary=spec.summary,
            value="".join(encode_row(row).decode() for row in sample_rows(spec, True)),
            response_only=True,
            media_type="application/jsonl",
        )
        for spec in FORMATS
    ]
