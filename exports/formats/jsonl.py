"""Canonical JSON Lines from a format spec, fast, and the writer that hashes them on the way out.

`JsonlEncoder` gives, byte for byte, `b"".join(encode_row(row) for row in rows_for_pairs(...))`
without building dict rows: a row is cut into runs of columns that depend only on the prompt
and the pair's two responses (encoded once per prompt and response pair) and runs of pair
values (margin, agreement, …; encoded once per distinct value). Long texts stay pieces of
their own, copied once when a batch is joined.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import IO, Any, NamedTuple

import orjson

from exports.formats.rows import pair_value
from exports.formats.spec import PROMPT_SOURCES, Column, FormatSpec, Source
from exports.pairs import Pair, PromptData

_GZIP_LEVEL = 6
_VALUE_CACHE_SIZE = 4096
"""Distinct pair-value runs kept encoded; the cache starts afresh when full."""

Pieces = tuple[bytes, ...]
StaticRow = tuple[Pieces, ...]
"""The static pieces of one output row, one tuple per static run."""


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

    def __init__(self, spec: FormatSpec, with_metadata: bool) -> None:
        self.spec = spec
        self.rows_per_pair = spec.rows_per_pair
        columns = spec.columns_with(with_metadata)
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
                _pieces(run, row_index, last=index == len(self.static_runs) - 1)
                for index, run in enumerate(self.static_runs)
            ]
            for row_index in range(self.rows_per_pair)
        ]

    def encode(
        self, prompt: PromptData, pairs: Sequence[Pair], split: str
    ) -> tuple[list[bytes], int]:
        """The JSON lines of one prompt's pairs as unjoined pieces, and the row count."""
        return _PromptEncoder(self, prompt, split).encode(pairs), len(pairs) * self.rows_per_pair


def _run(pending: list[tuple[Column, bytes]]) -> _ValueRun:
    return _ValueRun([column for column, _ in pending], [key for _, key in pending])


class _Fragment(NamedTuple):
    """A column's key and the column (its value is rendered per prompt or per response), or,
    without a column, constant bytes (keys, a label, the closing brace)."""

    key: bytes
    column: Column | None = None


class _Piece(NamedTuple):
    """Neighbouring fragments of a row that depend on the same side of the pair (0 the
    chosen response, 1 the rejected one) or on neither (`side` None): written as one piece.

    Usually one fragment renders a response: `before` and `after` are the fragments around
    it (constants and prompt values); otherwise `response` is None and `before` holds all.
    """

    side: int | None
    before: bytes | tuple[_Fragment, ...]
    """Constant bytes, or fragments with prompt values to encode per prompt."""
    response: _Fragment | None = None
    after: bytes | tuple[_Fragment, ...] = b""


def _pieces(run: list[tuple[Column, bytes]], row_index: int, *, last: bool) -> list[_Piece]:
    """A static run of one row of a pair (unpaired formats have two rows) as pieces."""
    fragments: list[tuple[int | None, _Fragment]] = []
    for column, key in run:
        if column.source is Source.LABEL:
            fragments.append((None, _Fragment(key + (b"true" if row_index == 0 else b"false"))))
        elif column.source in PROMPT_SOURCES:
            fragments.append((None, _Fragment(key, column)))
        elif column.source is Source.COMPLETION:
            fragments.append((row_index, _Fragment(key, column)))
        else:
            fragments.append((int(column.source is Source.REJECTED), _Fragment(key, column)))
    if last:
        fragments.append((None, _Fragment(b"}\n")))
    groups: list[tuple[int | None, list[tuple[int | None, _Fragment]]]] = []
    for side, fragment in fragments:
        if groups:
            group_side, group = groups[-1]
            if group_side is None or side is None or group_side == side:
                group.append((side, fragment))
                groups[-1] = (group_side if side is None else side, group)
                continue
        groups.append((side, [(side, fragment)]))
    pieces = []
    for side, group in groups:
        at = [index for index, (own, _) in enumerate(group) if own is not None]
        if len(at) == 1:
            before = _constants_joined(fragment for _, fragment in group[: at[0]])
            after = _constants_joined(fragment for _, fragment in group[at[0] + 1 :])
            pieces.append(_Piece(side, before, group[at[0]][1], after))
        else:
            pieces.append(_Piece(side, _constants_joined(fragment for _, fragment in group)))
    return pieces


def _constants_joined(fragments: Iterable[_Fragment]) -> bytes | tuple[_Fragment, ...]:
    """Neighbouring constants joined; all constant, just the bytes."""
    joined: list[_Fragment] = []
    for fragment in fragments:
        if fragment.column is None and joined and joined[-1].column is None:
            joined[-1] = _Fragment(joined[-1].key + fragment.key)
        else:
            joined.append(fragment)
    if all(fragment.column is None for fragment in joined):
        return b"".join(fragment.key for fragment in joined)
    return tuple(joined)


StaticPlan = tuple[tuple[dict[int, bytes], int], ...]
"""A static run of one prompt: per piece, its bytes by response id and the pair side that
picks the id."""


class _PromptEncoder:
    """The static pieces of one prompt's rows, built as its pairs ask for them.

    Every value is encoded once per prompt (per response where it renders one), and each
    piece becomes a table by response id: the static part of a pair's row is then a lookup
    by the chosen or the rejected id per piece. Nothing is joined per pair; long texts are
    copied once, when the batch is joined.
    """

    def __init__(self, encoder: JsonlEncoder, prompt: PromptData, split: str) -> None:
        self._statics: dict[tuple[int, int], tuple[StaticRow, ...]] = {}
        self._value_runs = encoder.value_runs
        self._prompt = prompt
        self._split = split
        self._ids = list(prompt.responses)
        self._dumped: dict[Any, dict[int, bytes]] = {}
        self._plans = [
            [tuple([self._table(piece) for piece in run]) for run in runs]
            for runs in encoder.row_plans
        ]

    def _constant(self, fragments: bytes | tuple[_Fragment, ...]) -> bytes:
        """Constants and prompt values, encoded."""
        if isinstance(fragments, bytes):
            return fragments
        prompt, split = self._prompt, self._split
        return b"".join(
            [
                key if column is None else key + orjson.dumps(column.prompt_value(prompt, split))
                for key, column in fragments
            ]
        )

    def _values(self, column: Column) -> dict[int, bytes]:
        """A response column's encoded values by response id (shared by chosen and rejected)."""
        render = column.of_response
        values = self._dumped.get(render)
        if values is None:
            assert render is not None
            prompt = self._prompt
            values = self._dumped[render] = {
                response_id: orjson.dumps(render(prompt, response))
                for response_id, response in prompt.responses.items()
            }
        return values

    def _table(self, piece: _Piece) -> tuple[dict[int, bytes], int]:
        """The piece's bytes by response id, and the side of the pair that picks the id."""
        if piece.response is not None and piece.side is not None:
            before = self._constant(piece.before) + piece.response.key
            after = self._constant(piece.after)
            assert piece.response.column is not None
            values = self._values(piece.response.column)
            if after:
                return {rid: before + value + after for rid, value in values.items()}, piece.side
            return {rid: before + value for rid, value in values.items()}, piece.side
        if piece.side is None:
            return dict.fromkeys(self._ids, self._constant(piece.before)), 0
        # Several fragments of the same response (no format has that yet): joined per id.
        assert isinstance(piece.before, tuple)
        return {
            rid: b"".join(
                [
                    self._constant((fragment,))
                    if fragment.column is None or fragment.column.source in PROMPT_SOURCES
                    else fragment.key + self._values(fragment.column)[rid]
                    for fragment in piece.before
                ]
            )
            for rid in self._ids
        }, piece.side

    def static_rows(self, chosen_id: int, rejected_id: int) -> tuple[StaticRow, ...]:
        sides = (chosen_id, rejected_id)
        result = self._statics[sides] = tuple(
            tuple([tuple([table[sides[side]] for table, side in run]) for run in runs])
            for runs in self._plans
        )
        return result

    def encode(self, pairs: Sequence[Pair]) -> list[bytes]:
        parts: list[bytes] = []
        extend, append = parts.extend, parts.append
        statics, make = self._statics, self.static_rows
        value_runs = self._value_runs
        # One loop per number of value runs: this runs once per exported row.
        if not value_runs:
            for pair in pairs:
                for (static,) in statics.get((pair[1], pair[2])) or make(pair[1], pair[2]):
                    extend(static)
        elif len(value_runs) == 1:
            (run,) = value_runs
            get, cache, build = run.get, run.cache, run.build
            for pair in pairs:
                value = get(pair)
                encoded = cache.get(value) or build(value)
                for before, after in statics.get((pair[1], pair[2])) or make(pair[1], pair[2]):
                    extend(before)
                    append(encoded)
                    extend(after)
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
                    extend(before)
                    append(encoded1)
                    extend(between)
                    append(encoded2)
                    extend(after)
        else:
            for pair in pairs:
                pieces: list[bytes] = []
                for run in value_runs:
                    value = run.get(pair)
                    pieces.append(run.cache.get(value) or run.build(value))
                for row in statics.get((pair[1], pair[2])) or make(pair[1], pair[2]):
                    for static, piece in zip(row[:-1], pieces, strict=True):
                        extend(static)
                        append(piece)
                    extend(row[-1])
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
