"""Test-only reference renderings the fast writers are held to: dict rows written one
canonical line at a time, in batches, through the production `JsonlWriter`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO

from exports.formats import (
    FileResult,
    JsonlEncoder,
    JsonlWriter,
    Row,
    encode_row,
    format_spec,
    rows_for_pairs,
)
from exports.pairs import Pair, PromptData

BATCH_ROWS = 1000


def write_rows(writer: JsonlWriter, rows: list[Row]) -> int:
    """One batch of dict rows through the writer; how many."""
    writer.write_encoded(b"".join(encode_row(row) for row in rows), len(rows))
    return len(rows)


def write_jsonl(
    rows: Iterable[Row], binary_file: IO[bytes], *, compress: bool = False
) -> FileResult:
    """Stream `rows` to `binary_file` as JSON Lines in bounded batches."""
    writer = JsonlWriter(binary_file, compress=compress)
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            write_rows(writer, batch)
            batch = []
    write_rows(writer, batch)
    return writer.close()


def write_jsonl_gz(rows: Iterable[Row], binary_file: IO[bytes]) -> FileResult:
    """`write_jsonl` through gzip with a fixed header, so equal rows give equal bytes."""
    return write_jsonl(rows, binary_file, compress=True)


def rows_for_pair(
    fmt: str, pair: Pair, prompt: PromptData, split: str, with_metadata: bool = True
) -> list[Row]:
    """The output rows of one pair in format `fmt` (two rows for unpaired formats)."""
    return rows_for_pairs(fmt, [pair], prompt, split, with_metadata)


def encode_pairs(
    fmt: str,
    pairs: list[Pair],
    prompt: PromptData,
    split: str,
    with_metadata: bool = True,
    soft_labels: bool = False,
) -> tuple[bytes, int]:
    """The fast encoder's bytes for one prompt's pairs, joined."""
    spec = format_spec(fmt)
    [parts] = JsonlEncoder(spec, with_metadata, soft_labels).encode([(prompt, pairs, split)])
    return b"".join(parts), len(pairs) * spec.rows_per_pair
