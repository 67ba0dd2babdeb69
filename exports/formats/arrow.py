"""Arrow tables and Parquet files from a format spec.

`parquet_schema` maps the spec's value types to Arrow types; `ArrowBatchBuilder` builds
the table of many prompts' pairs equal to `pa.Table.from_pylist(rows_for_pairs(...))`
without dict rows: prompt and response values are converted once and rows pick them by
index (`take`), pair fields are transposed in one step.

pyarrow is imported where it is used: it costs a process about 50 MB and a quarter of a
second, which only Parquet exports and previews should pay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from exports.formats.jsonl import CountingHashWriter, FileResult
from exports.formats.registry import format_spec
from exports.formats.spec import PROMPT_SOURCES, RESPONSE_SOURCES, Column, Source, ValueType
from exports.pairs import Pair, PromptData

if TYPE_CHECKING:
    import pyarrow as pa

PARQUET_COMPRESSION = "zstd"


def arrow_type(value_type: ValueType) -> pa.DataType:
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    types = {
        ValueType.TEXT: pa.string(),
        ValueType.INTEGER: pa.int64(),
        ValueType.FLOAT: pa.float64(),
        ValueType.BOOLEAN: pa.bool_(),
        ValueType.TEXTS: pa.list_(pa.string()),
        ValueType.MESSAGES: pa.list_(message),
        ValueType.CONVERSATION: pa.struct([("messages", pa.list_(message))]),
    }
    return types[value_type]


def parquet_schema(
    fmt: str, with_metadata: bool = True, soft_labels: bool = False, source_column: bool = False
) -> pa.Schema:
    """The fixed Arrow schema of a format's rows; every batch is written against it."""
    import pyarrow as pa

    columns = format_spec(fmt).columns_with(with_metadata, soft_labels, source_column)
    return pa.schema([(column.name, arrow_type(column.type)) for column in columns])


class ArrowBatchBuilder:
    """Builds one Arrow table from many prompts' pairs, column by column."""

    def __init__(
        self,
        fmt: str,
        with_metadata: bool,
        soft_labels: bool = False,
        source_column: bool = False,
    ) -> None:
        spec = format_spec(fmt)
        self.columns = spec.columns_with(with_metadata, soft_labels, source_column)
        self.schema = parquet_schema(fmt, with_metadata, soft_labels, source_column)
        self.rows_per_pair = spec.rows_per_pair
        self._prompt_columns = [c for c in self.columns if c.source in PROMPT_SOURCES]
        # Chosen and rejected columns of one rendering share its values.
        self._renders = {
            column.of_response: column
            for column in self.columns
            if column.source in RESPONSE_SOURCES and column.of_response is not None
        }
        self._reset()

    def _reset(self) -> None:
        self.rows = 0
        self._prompt_values: dict[str, list[Any]] = {c.name: [] for c in self._prompt_columns}
        self._response_values: dict[Any, list[Any]] = {render: [] for render in self._renders}
        self._slots: dict[int, int] = {}
        self._pairs: list[Pair] = []
        self._pairs_per_prompt: list[int] = []

    def add(self, prompt: PromptData, pairs: Sequence[Pair], split: str) -> int:
        for column in self._prompt_columns:
            self._prompt_values[column.name].append(column.prompt_value(prompt, split))
        slots = self._slots
        for response_id, response in prompt.responses.items():
            slots[response_id] = len(slots)
            for render, column in self._renders.items():
                self._response_values[render].append(column.response_value(prompt, response))
        self._pairs.extend(pairs)
        self._pairs_per_prompt.append(len(pairs))
        count = len(pairs) * self.rows_per_pair
        self.rows += count
        return count

    def table(self) -> pa.Table:
        """The table of everything added since the last call; the builder starts afresh."""
        import numpy as np
        import pyarrow as pa

        count = len(self._pairs)
        fields: list[Sequence[Any]] = (
            list(zip(*self._pairs, strict=True)) if count else [()] * len(Pair._fields)
        )
        slot_of = self._slots.__getitem__

        def slots(ids: Sequence[int]) -> np.ndarray:
            return np.fromiter(map(slot_of, ids), dtype=np.int32, count=len(ids))

        pair_prompts = np.repeat(
            np.arange(len(self._pairs_per_prompt), dtype=np.int32), self._pairs_per_prompt
        )
        chosen = slots(fields[Pair._fields.index("chosen_id")])
        rejected = slots(fields[Pair._fields.index("rejected_id")])
        # Row → pair; unpaired formats write the chosen row, then the rejected row, per pair.
        row_pairs = (
            np.repeat(np.arange(count, dtype=np.int32), 2) if self.rows_per_pair == 2 else None
        )
        if row_pairs is None:
            indexes = {
                Source.PROMPT: pair_prompts,
                Source.CHOSEN: chosen,
                Source.REJECTED: rejected,
            }
        else:
            indexes = {
                Source.PROMPT: pair_prompts[row_pairs],
                Source.CHOSEN: chosen[row_pairs],
                Source.REJECTED: rejected[row_pairs],
                Source.COMPLETION: np.column_stack((chosen, rejected)).ravel(),
            }
        indexes[Source.SPLIT] = indexes[Source.PROMPT]
        converted: dict[Any, pa.Array] = {}
        arrays = []
        for column in self.columns:
            data_type = self.schema.field(column.name).type
            source = column.source
            if source in PROMPT_SOURCES:
                values = pa.array(self._prompt_values[column.name], data_type)
                arrays.append(values.take(pa.array(indexes[source])))
            elif source in RESPONSE_SOURCES:
                values = converted.get(column.of_response)
                if values is None:
                    values = converted[column.of_response] = pa.array(
                        self._response_values[column.of_response], data_type
                    )
                arrays.append(values.take(pa.array(indexes[source])))
            elif source is Source.LABEL:
                arrays.append(pa.array(np.tile(np.array([True, False]), count)))
            else:
                values = _pair_array(column, fields[column.pair_index], data_type)
                arrays.append(values if row_pairs is None else values.take(pa.array(row_pairs)))
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        self._reset()
        return table


def _pair_array(column: Column, values: Sequence[Any], data_type: pa.DataType) -> pa.Array:
    """A pair field as an Arrow array; list values (rater keys) repeat, so each distinct one
    is converted once."""
    import pyarrow as pa

    if column.type is not ValueType.TEXTS:
        return pa.array(values, data_type)
    distinct: dict[Any, int] = {}
    index = [distinct.setdefault(value, len(distinct)) for value in values]
    return pa.array(list(distinct), data_type).take(pa.array(index, pa.int32()))


class ParquetWriter:
    """Writes tables to a binary file as Parquet with a fixed schema, one row group per
    table, and hashes the bytes on their way out (Parquet bytes depend on the pyarrow
    version: same version, same data, same file)."""

    def __init__(self, binary_file: IO[bytes], schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        self._sink = CountingHashWriter(binary_file)
        self._writer = pq.ParquetWriter(
            self._sink,
            schema,
            compression=PARQUET_COMPRESSION,
            use_dictionary=True,
            write_statistics=True,
        )
        self._rows = 0
        self._closed = False

    def write_table(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table, row_group_size=table.num_rows)
            self._rows += table.num_rows

    def close(self) -> FileResult:
        if not self._closed:
            self._writer.close()
            self._sink.flush()
            self._closed = True
        return self._sink.result(self._rows)
