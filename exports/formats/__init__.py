"""Export formats: pairs to TRL/OpenAI/HH-RLHF/UltraFeedback rows, deterministic JSONL and
Parquet files.

Each format is declared once in `registry.FORMATS` (its columns, built from the vocabulary
in `spec`); `rows` renders dict rows (the reference), `jsonl` the same rows as canonical
JSON Lines bytes without building dicts, `arrow` as Arrow tables under the schema the
spec implies, and `files` routes them to an export's files. Tests hold every rendering to
the dict rows. Pure: no Django.
"""

from __future__ import annotations

from exports.formats.arrow import ArrowBatchBuilder, ParquetWriter, parquet_schema
from exports.formats.files import (
    ALL,
    TEST,
    TRAIN,
    ExportFiles,
    read_first_rows,
    split_for_prompt,
)
from exports.formats.jsonl import FileResult, JsonlEncoder, JsonlWriter
from exports.formats.registry import (
    DEFAULT_FORMAT,
    EXPORT_FORMAT_CHOICES,
    EXPORT_FORMAT_NAMES,
    FORMAT_CHOICES,
    FORMAT_NAMES,
    FORMATS,
    RECORD_FORMAT_KINDS,
    RECORD_FORMAT_NAMES,
    format_spec,
    formats_with_column,
)
from exports.formats.rows import Row, encode_row, rows_for_pairs
from exports.formats.sft import SFT_FORMAT_NAMES
from exports.formats.spec import METADATA_COLUMNS, SOFT_LABEL_COLUMNS, Column, FormatSpec

__all__ = [
    "ALL",
    "DEFAULT_FORMAT",
    "EXPORT_FORMAT_CHOICES",
    "EXPORT_FORMAT_NAMES",
    "FORMATS",
    "FORMAT_CHOICES",
    "FORMAT_NAMES",
    "METADATA_COLUMNS",
    "RECORD_FORMAT_KINDS",
    "RECORD_FORMAT_NAMES",
    "SFT_FORMAT_NAMES",
    "SOFT_LABEL_COLUMNS",
    "TEST",
    "TRAIN",
    "ArrowBatchBuilder",
    "Column",
    "ExportFiles",
    "FileResult",
    "FormatSpec",
    "JsonlEncoder",
    "JsonlWriter",
    "ParquetWriter",
    "Row",
    "encode_row",
    "format_spec",
    "formats_with_column",
    "parquet_schema",
    "read_first_rows",
    "rows_for_pairs",
    "split_for_prompt",
]
