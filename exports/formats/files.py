"""An export's files (the combined one and one per split), the seeded train/test split, and
reading the first rows back for previews."""

from __future__ import annotations

import gzip
import hashlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import orjson

from exports.formats.arrow import ArrowBatchBuilder, ParquetWriter, parquet_schema
from exports.formats.jsonl import FileResult, JsonlEncoder, JsonlWriter
from exports.formats.registry import format_spec
from exports.formats.rows import Row
from exports.pairs import Pair, PromptData

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger(__name__)

TRAIN = "train"
TEST = "test"
ALL = "all"
"""The file with every row, whatever the split."""
CONTAINERS = ("jsonl", "jsonl.gz", "parquet")


def split_for_prompt(prompt_id: int, seed: int, test_fraction: float) -> str:
    """`"train"` or `"test"` for a prompt, from a seeded hash so every row of it lands together."""
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    digest = hashlib.sha256(f"{seed}:{prompt_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return TEST if position < test_fraction else TRAIN


class _Inline:
    """Runs submitted work at once (streaming, where the caller reads the sink right after)."""

    def submit(self, function: Callable[..., Any], *args: Any) -> None:
        function(*args)

    def close(self) -> None:
        pass


class _Worker:
    """One background thread running submitted work in order; errors surface on close()."""

    def __init__(self, depth: int = 2) -> None:
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.Queue(
            maxsize=depth
        )
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="export-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                function, args = item
                try:
                    function(*args)
                except BaseException as error:  # re-raised in the caller's thread
                    self._error = error

    def submit(self, function: Callable[..., Any], *args: Any) -> None:
        if self._error is not None:
            self.close()
        self._queue.put((function, args))

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error


class ExportFiles:
    """The export's files: one with every row (`"all"`) and, when split, one per split.

    Feed it prompt by prompt with `add`; `encode` renders what was added (the batch's JSON
    lines or Arrow table), `flush` writes it (call both once per batch, which bounds memory
    and makes one Parquet row group); `close` gives a result per file. The same canonical
    bytes (or Arrow rows) go to the combined file and to the prompt's split file.

    With `background` (the default) compressing, hashing and writing happen on one worker
    thread, in submission order, while the caller builds the next batch: zlib, hashlib,
    Arrow and file writes release the GIL, so this uses a second core. At most two flushed
    batches wait for it, which keeps memory bounded.
    """

    def __init__(
        self,
        *,
        fmt: str,
        container: str,
        with_metadata: bool,
        files: dict[str, IO[bytes]],
        background: bool = True,
        soft_labels: bool = False,
        source_column: bool = False,
    ) -> None:
        if ALL not in files:
            raise ValueError("the combined file is required")
        if container not in CONTAINERS:
            raise ValueError(f"unknown container {container!r}")
        spec = format_spec(fmt)
        self._parts = list(files)
        self._jsonl: dict[str, JsonlWriter] = {}
        self._arrow: dict[str, ParquetWriter] = {}
        self._encoder: JsonlEncoder | None = None
        self._builder: ArrowBatchBuilder | None = None
        if container == "parquet":
            schema = parquet_schema(fmt, with_metadata, soft_labels, source_column)
            self._arrow = {part: ParquetWriter(handle, schema) for part, handle in files.items()}
            self._builder = ArrowBatchBuilder(fmt, with_metadata, soft_labels, source_column)
        else:
            compress = container == "jsonl.gz"
            self._jsonl = {
                part: JsonlWriter(handle, compress=compress) for part, handle in files.items()
            }
            self._encoder = JsonlEncoder(spec, with_metadata, soft_labels, source_column)
        self._worker = _Worker() if background else _Inline()
        self._rows_per_pair = spec.rows_per_pair
        self._row_splits: list[tuple[str | None, int]] = []
        self._tables: list[pa.Table] = []
        self._pending: list[tuple[PromptData, list[Pair], str]] = []
        self._pending_splits: list[str | None] = []
        self._pending_bytes: dict[str, list[bytes]] = {part: [] for part in self._parts}
        self._pending_counts: dict[str, int] = dict.fromkeys(self._parts, 0)
        self.rows_by_split: dict[str, int] = {TRAIN: 0, TEST: 0}

    def add(self, prompt: PromptData, pairs: list[Pair], split: str) -> int:
        """Queue the rows of one prompt's pairs; returns how many rows that is."""
        split_part = split if split in self._pending_counts and split != ALL else None
        if self._builder is not None:
            count = self._builder.add(prompt, pairs, split)
            self._row_splits.append((split_part, count))
        else:
            count = len(pairs) * self._rows_per_pair
            self._pending.append((prompt, pairs, split))
            self._pending_splits.append(split_part)
        self._pending_counts[ALL] += count
        if split_part:
            self._pending_counts[split_part] += count
        self.rows_by_split[split] = self.rows_by_split.get(split, 0) + count
        return count

    def encode(self) -> None:
        """Render what was added since the last call: its JSON lines, or its Arrow table.
        `flush` does it when it was not done."""
        if self._builder is not None:
            if self._builder.rows:
                self._tables.append(self._builder.table())
            return
        if not self._pending:
            return
        assert self._encoder is not None
        encoded = self._encoder.encode(self._pending)
        for parts, split_part in zip(encoded, self._pending_splits, strict=True):
            self._pending_bytes[ALL].extend(parts)
            if split_part:
                self._pending_bytes[split_part].extend(parts)
        self._pending, self._pending_splits = [], []

    def flush(self) -> None:
        """Write what was added since the last flush."""
        self.encode()
        if self._builder is not None:
            self._write_table()
        else:
            for part in self._parts:
                data = b"".join(self._pending_bytes[part])
                self._pending_bytes[part] = []
                self._worker.submit(
                    self._jsonl[part].write_encoded, data, self._pending_counts[part]
                )
        self._pending_counts = dict.fromkeys(self._parts, 0)

    def _write_table(self) -> None:
        import numpy as np
        import pyarrow as pa

        if not self._tables:
            return
        tables, self._tables = self._tables, []
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        self._worker.submit(self._arrow[ALL].write_table, table)
        splits = [part for part in self._parts if part != ALL]
        if splits:
            labels = np.repeat(
                np.array([split or "" for split, _ in self._row_splits], dtype=object),
                [count for _, count in self._row_splits],
            )
            for part in splits:
                self._worker.submit(
                    self._arrow[part].write_table, table.filter(pa.array(labels == part))
                )
        self._row_splits = []

    def close(self) -> dict[str, FileResult]:
        self.flush()
        self._worker.close()
        writers: dict[str, JsonlWriter] | dict[str, ParquetWriter] = self._arrow or self._jsonl
        return {part: writer.close() for part, writer in writers.items()}

    def abort(self) -> None:
        """Stop the background writer without finishing the files (the export stopped)."""
        try:
            self._worker.close()
        except Exception:
            logger.debug("writer error after the export stopped", exc_info=True)


def read_first_rows(binary_file: IO[bytes], container: str, limit: int) -> list[Row]:
    """The first `limit` rows of an export file, for previews."""
    if limit <= 0:
        return []
    if container == "parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(binary_file)
        for batch in parquet.iter_batches(batch_size=limit):
            rows: list[Row] = batch.to_pylist()[:limit]
            return rows
        return []
    stream: IO[bytes] = (
        gzip.GzipFile(fileobj=binary_file, mode="rb")  # type: ignore[assignment]
        if container == "jsonl.gz"
        else binary_file
    )
    rows = []
    for line in stream:
        if len(rows) >= limit:
            break
        if line.strip():
            rows.append(orjson.loads(line))
    return rows
