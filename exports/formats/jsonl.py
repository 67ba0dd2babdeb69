"""Canonical JSON Lines from a format spec, fast, and the writer that hashes them on the way out.

`JsonlEncoder` gives, byte for byte, `encode_row` of every row `rows_for_pairs` would build,
without building dict rows. A row is cut into static runs (columns that depend only on the
prompt and the pair's two responses) and runs of pair values (margin, agreement, …). Per
prompt, each static run becomes a `%b` format of its constants and prompt values (encoded
once, `%` escaped) with a slot per response value (encoded once per response); per
(chosen, rejected) pair one C-level formatting makes the run's bytes. Pair values are
encoded once per distinct value. A row is then a few pieces, joined once per batch.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import IO, Any, NamedTuple

import orjson

from exports.formats.rows import pair_value
from exports.formats.spec import PROMPT_SOURCES, Column, FormatSpec, Source
from exports.pairs import Pair, PromptData

_GZIP_LEVEL = 6
_VALUE_CACHE_SIZE = 4096
"""Distinct pair-value runs kept encoded; the cache starts afresh when full."""

PromptPairs = tuple[PromptData, Sequence[Pair], str]
"""A prompt, its pairs and its split."""
StaticRows = list[list[bytes]]
"""The static runs of a pair's rows (two rows for unpaired formats), each as one bytes."""


class _ValueRun:
    """Consecutive pair-value columns, encoded once per distinct tuple of values."""

    def __init__(self, columns: list[Column], keys: list[bytes]) -> None:
        self.get: Callable[[Pair], Any] = itemgetter(*(column.pair_index for column in columns))
        self._keys = keys
        self._single = len(columns) == 1
        self.cache: dict[Any, bytes] = {}

    def build(self, value: Any) -> bytes:
        values = (value,) if self._single else value
        encoded = b"".join(
            key + orjson.dumps(pair_value(item))
            for key, item in zip(self._keys, values, strict=True)
        )
        if len(self.cache) >= _VALUE_CACHE_SIZE:
            self.cache.clear()
        self.cache[value] = encoded
        return encoded


class JsonlEncoder:
    """Canonical JSON lines of one format's rows; one encoder serves a whole export."""

    def __init__(
        self,
        spec: FormatSpec,
        with_metadata: bool,
        soft_labels: bool = False,
        source_column: bool = False,
    ) -> None:
        self.spec = spec
        self.rows_per_pair = spec.rows_per_pair
        columns = spec.columns_with(with_metadata, soft_labels, source_column)
        keys = [
            (b"{" if index == 0 else b",") + orjson.dumps(column.name) + b":"
            for index, column in enumerate(columns)
        ]
        # Alternating runs: static, value, static, …, static (the first and last maybe empty).
        self.static_runs: list[list[tuple[Column, bytes]]] = [[]]
        self.value_runs: list[_ValueRun] = []
        pending: list[tuple[Column, bytes]] = []
        for column, key in zip(columns, keys, strict=True):
            if column.source is Source.PAIR:
                pending.append((column, key))
                continue
            if pending:
                self.value_runs.append(_run(pending))
                self.static_runs.append([])
                pending = []
            self.static_runs[-1].append((column, key))
        if pending:
            self.value_runs.append(_run(pending))
            self.static_runs.append([])
        # What each static run of each row of a pair is made of (unpaired formats: two rows).
        self.row_plans = [
            [
                _template(run, row_index, last=index == len(self.static_runs) - 1)
                for index, run in enumerate(self.static_runs)
            ]
            for row_index in range(self.rows_per_pair)
        ]

    def encode(self, batch: Sequence[PromptPairs]) -> list[list[bytes]]:
        """The JSON lines of each prompt's pairs, as unjoined pieces."""
        return [_PromptEncoder(self, prompt, split).encode(pairs) for prompt, pairs, split in batch]


def _run(pending: list[tuple[Column, bytes]]) -> _ValueRun:
    return _ValueRun([column for column, _ in pending], [key for _, key in pending])


class _Part(NamedTuple):
    """A part of a static run between response values: constant bytes (`column` None), or
    a prompt value."""

    key: bytes
    column: Column | None = None


class _Template(NamedTuple):
    """A static run, compiled once per export: the runs of constants and prompt values
    (`segments`) between its response values (`slots`: column and pair side). Segments
    without prompt values are encoded here (`encoded`), the others once per prompt."""

    segments: tuple[tuple[_Part, ...], ...]
    encoded: tuple[bytes | None, ...]
    slots: tuple[tuple[Column, int], ...]


def _template(run: list[tuple[Column, bytes]], row_index: int, *, last: bool) -> _Template:
    """A static run of one row of a pair (unpaired formats have two rows)."""
    segments: list[list[_Part]] = [[]]
    slots: list[tuple[Column, int]] = []
    for column, key in run:
        if column.source is Source.LABEL:
            segments[-1].append(_Part(key + (b"true" if row_index == 0 else b"false")))
        elif column.source in PROMPT_SOURCES:
            segments[-1].extend((_Part(key), _Part(b"", column)))
        else:
            side = (
                row_index
                if column.source is Source.COMPLETION
                else int(column.source is Source.REJECTED)
            )
            segments[-1].append(_Part(key))
            slots.append((column, side))
            segments.append([])
    if last:
        segments[-1].append(_Part(b"}\n"))
    encoded = tuple(
        b"".join(part.key for part in segment)
        if all(part.column is None for part in segment)
        else None
        for segment in segments
    )
    return _Template(tuple(map(tuple, segments)), encoded, tuple(slots))


Slots = list[tuple[dict[int, bytes], int]]
"""A run's response values: the encoded values by response id, and the pair side."""


class _PromptEncoder:
    """The static part of one prompt's rows, made once per (chosen, rejected) pair.

    Per prompt each static run becomes a `%b` format of its constants and prompt values
    (`%` escaped) and the encoded values of its responses; per pair, one C-level
    formatting fills in the chosen and rejected response values. A row is then a few
    pieces: its static runs and its pair values.
    """

    def __init__(self, encoder: JsonlEncoder, prompt: PromptData, split: str) -> None:
        self._statics: dict[tuple[int, int], StaticRows] = {}
        self._value_runs = encoder.value_runs
        self._prompt = prompt
        self._split = split
        self._values: dict[Any, dict[int, bytes]] = {}
        self._plans = [[self._format(run) for run in runs] for runs in encoder.row_plans]

    def _encoded(self, column: Column) -> dict[int, bytes]:
        """A response column's encoded values by response id (chosen and rejected share)."""
        render = column.of_response
        values = self._values.get(render)
        if values is None:
            assert render is not None
            prompt = self._prompt
            values = self._values[render] = {
                response_id: orjson.dumps(render(prompt, response))
                for response_id, response in prompt.responses.items()
            }
        return values

    def _segment(self, segment: tuple[_Part, ...]) -> bytes:
        prompt, split = self._prompt, self._split
        return b"".join(
            [
                key if column is None else orjson.dumps(column.prompt_value(prompt, split))
                for key, column in segment
            ]
        )

    def _format(self, template: _Template) -> tuple[bytes, Slots]:
        """The run's bytes (no response values) or `%b` format, and its slots."""
        segments = [
            done if done is not None else self._segment(segment)
            for segment, done in zip(template.segments, template.encoded, strict=True)
        ]
        if not template.slots:
            return segments[0], []
        slots = [(self._encoded(column), side) for column, side in template.slots]
        return b"%b".join(segment.replace(b"%", b"%%") for segment in segments), slots

    def static_rows(self, chosen_id: int, rejected_id: int) -> StaticRows:
        sides = (chosen_id, rejected_id)
        rows = self._statics[sides] = [
            [
                form % tuple([table[sides[side]] for table, side in slots]) if slots else form
                for form, slots in runs
            ]
            for runs in self._plans
        ]
        return rows

    def encode(self, pairs: Sequence[Pair]) -> list[bytes]:
        parts: list[bytes] = []
        append = parts.append
        statics, make = self._statics, self.static_rows
        value_runs = self._value_runs
        # One loop per number of value runs: this runs once per exported row.
        if not value_runs:
            for pair in pairs:
                for (static,) in statics.get((pair[1], pair[2])) or make(pair[1], pair[2]):
                    append(static)
        elif len(value_runs) == 1:
            (run,) = value_runs
            get, cache, build = run.get, run.cache, run.build
            for pair in pairs:
                value = get(pair)
                encoded = cache.get(value) or build(value)
                for before, after in statics.get((pair[1], pair[2])) or make(pair[1], pair[2]):
                    append(before)
                    append(encoded)
                    append(after)
        elif len(value_runs) == 2:
            first, second = value_runs
            get1, cache1, build1 = first.get, first.cache, first.build
            get2, cache2, build2 = second.get, second.cache, second.build
            for pair in pairs:
                value1, value2 = get1(pair), get2(pair)
                encoded1 = cache1.get(value1) or build1(value1)
                encoded2 = cache2.get(value2) or build2(value2)
                for before, between, after in statics.get((pair[1], pair[2])) or make(
                    pair[1], pair[2]
                ):
                    append(before)
                    append(encoded1)
                    append(between)
                    append(encoded2)
                    append(after)
        else:
            for pair in pairs:
                pieces: list[bytes] = []
                for run in value_runs:
                    value = run.get(pair)
                    pieces.append(run.cache.get(value) or run.build(value))
                for row in statics.get((pair[1], pair[2])) or make(pair[1], pair[2]):
                    for static, piece in zip(row[:-1], pieces, strict=True):
                        append(static)
                        append(piece)
                    append(row[-1])
        return parts


# --- the file writer --------------------------------------------------------------------


class FileResult(NamedTuple):
    rows: int
    sha256: str
    """Hex digest of the bytes written to the file (compressed bytes for gzip)."""
    size_bytes: int


class CountingHashWriter:
    """A write-only file wrapper that hashes and counts the bytes passing through."""

    def __init__(self, binary_file: IO[bytes]) -> None:
        self._file = binary_file
        self.sha256 = hashlib.sha256()
        self.size_bytes = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size_bytes += len(data)
        self._file.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size_bytes

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        # The caller owns the underlying file; writers closing their sink only flush it.
        if not self.closed:
            self._file.flush()
            self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def result(self, rows: int) -> FileResult:
        return FileResult(rows, self.sha256.hexdigest(), self.size_bytes)


class JsonlWriter:
    """Streams canonical JSON lines to a binary file, optionally gzipped, byte-identically.

    Call `write_encoded` once per batch; `close()` gives the row count and the sha256 and
    size of what reached the file.
    """

    def __init__(self, binary_file: IO[bytes], *, compress: bool = False) -> None:
        self._sink = CountingHashWriter(binary_file)
        # mtime=0 and an empty file name keep the gzip header identical run to run.
        self._gzip = (
            gzip.GzipFile(
                filename="",
                mode="wb",
                fileobj=self._sink,
                compresslevel=_GZIP_LEVEL,
                mtime=0,
            )
            if compress
            else None
        )
        self._rows = 0
        self._closed = False

    def write_encoded(self, data: bytes, rows: int) -> None:
        """Write `rows` canonical lines given as one bytes object."""
        if not data:
            return
        if self._gzip is not None:
            self._gzip.write(data)
        else:
            self._sink.write(data)
        self._rows += rows

    def close(self) -> FileResult:
        if not self._closed:
            if self._gzip is not None:
                self._gzip.close()
            self._sink.flush()
            self._closed = True
        return self._sink.result(self._rows)
