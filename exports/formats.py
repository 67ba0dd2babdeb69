"""Format writers: pairs to TRL/OpenAI/HH-RLHF rows, deterministic JSONL and Parquet files.

Two renderings of the same rows: `rows_for_pairs` builds plain dicts (the reference, used for
Parquet, previews and tests) and `encode_pairs` assembles the canonical JSON Lines bytes
directly from fragments encoded once per prompt, which is what makes JSONL exports fast.
Tests hold the two to byte equality.
"""

from __future__ import annotations

import gzip
import hashlib
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Self

import orjson

from exports.pairs import Pair, PromptData

if TYPE_CHECKING:
    import pyarrow as pa

Row = dict[str, Any]
Message = dict[str, Any]
PairRows = Callable[[Pair], list[Row]]
FormatWriter = Callable[[PromptData], PairRows]

TRAIN = "train"
TEST = "test"

ALL = "all"
"""The file with every row, whatever the split."""
_GZIP_LEVEL = 6
_ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


# --- prompt rendering -------------------------------------------------------------------


def prompt_messages(prompt: PromptData) -> list[Message]:
    """The conversation as plain `{role, content}` messages."""
    return [{"role": message["role"], "content": message["content"]} for message in prompt.messages]


def prompt_text(prompt: PromptData) -> str:
    """The conversation as one string: a lone user message as is, otherwise role-prefixed turns."""
    messages = prompt.messages
    if len(messages) == 1 and messages[0]["role"] == "user":
        return str(messages[0]["content"])
    return "\n\n".join(
        f"{_ROLE_LABELS.get(message['role'], str(message['role']).title())}: {message['content']}"
        for message in messages
    )


def hh_rlhf_transcript(prompt: PromptData) -> str:
    """The conversation as `\\n\\nHuman: … \\n\\nAssistant: …` turns.

    HH-RLHF has no system turn, so system text is folded in front of the next Human turn.
    """
    parts: list[str] = []
    pending_system: list[str] = []
    for message in prompt.messages:
        role, content = message["role"], str(message["content"])
        if role == "system":
            pending_system.append(content)
        elif role == "assistant":
            parts.append(f"\n\nAssistant: {content}")
        else:
            parts.append(f"\n\nHuman: {_fold(pending_system, content)}")
            pending_system = []
    if pending_system:
        parts.append("\n\nHuman: " + "\n\n".join(pending_system))
    return "".join(parts)


def _fold(system_texts: list[str], content: str) -> str:
    return "\n\n".join([*system_texts, content])


def _assistant(text: str) -> list[Message]:
    return [{"role": "assistant", "content": text}]


# --- format writers ---------------------------------------------------------------------
#
# A writer is given one prompt, renders everything that does not depend on the pair once,
# and returns the function that turns each pair of that prompt into rows. Rows of one
# prompt therefore share their prompt and response objects: treat rows as read-only.


def trl_standard_writer(prompt: PromptData) -> PairRows:
    text = prompt_text(prompt)
    responses = _response_texts(prompt)

    def rows(pair: Pair) -> list[Row]:
        return [
            {
                "prompt": text,
                "chosen": responses[pair.chosen_id],
                "rejected": responses[pair.rejected_id],
            }
        ]

    return rows


def trl_conversational_writer(prompt: PromptData) -> PairRows:
    messages = prompt_messages(prompt)
    responses = _response_messages(prompt)

    def rows(pair: Pair) -> list[Row]:
        return [
            {
                "prompt": messages,
                "chosen": responses[pair.chosen_id],
                "rejected": responses[pair.rejected_id],
            }
        ]

    return rows


def trl_reward_writer(prompt: PromptData) -> PairRows:
    """The standard preference row plus the pair's margin."""
    standard = trl_standard_writer(prompt)

    def rows(pair: Pair) -> list[Row]:
        (row,) = standard(pair)
        row["margin"] = pair.margin
        return [row]

    return rows


def trl_unpaired_writer(prompt: PromptData) -> PairRows:
    text = prompt_text(prompt)
    responses = _response_texts(prompt)

    def rows(pair: Pair) -> list[Row]:
        return [
            {"prompt": text, "completion": responses[pair.chosen_id], "label": True},
            {"prompt": text, "completion": responses[pair.rejected_id], "label": False},
        ]

    return rows


def openai_writer(prompt: PromptData) -> PairRows:
    conversation = {"messages": prompt_messages(prompt)}
    responses = _response_messages(prompt)

    def rows(pair: Pair) -> list[Row]:
        return [
            {
                "input": conversation,
                "preferred_output": responses[pair.chosen_id],
                "non_preferred_output": responses[pair.rejected_id],
            }
        ]

    return rows


def hh_rlhf_writer(prompt: PromptData) -> PairRows:
    transcript = hh_rlhf_transcript(prompt)
    transcripts = {
        response_id: f"{transcript}\n\nAssistant: {response.text}"
        for response_id, response in prompt.responses.items()
    }

    def rows(pair: Pair) -> list[Row]:
        return [{"chosen": transcripts[pair.chosen_id], "rejected": transcripts[pair.rejected_id]}]

    return rows


def _response_texts(prompt: PromptData) -> dict[int, str]:
    return {response_id: response.text for response_id, response in prompt.responses.items()}


def _response_messages(prompt: PromptData) -> dict[int, list[Message]]:
    return {
        response_id: _assistant(response.text) for response_id, response in prompt.responses.items()
    }


FORMATS: dict[str, FormatWriter] = {
    "trl": trl_standard_writer,
    "trl-conversational": trl_conversational_writer,
    "trl-reward": trl_reward_writer,
    "trl-unpaired": trl_unpaired_writer,
    "openai": openai_writer,
    "hh-rlhf": hh_rlhf_writer,
}


def metadata_columns(pair: Pair, prompt: PromptData, split: str) -> Row:
    """Columns that ride along with every format so rows can be traced and filtered."""
    responses = prompt.responses
    return {
        "prompt_id": pair.prompt_id,
        "prompt_external_id": prompt.external_id,
        "chosen_id": pair.chosen_id,
        "rejected_id": pair.rejected_id,
        "chosen_model": responses[pair.chosen_id].model,
        "rejected_model": responses[pair.rejected_id].model,
        "margin": pair.margin,
        "agreement": pair.agreement,
        "n_raters": pair.n_raters,
        "rater_keys": list(pair.rater_keys),
        "group_id": pair.prompt_id,
        "split": split,
    }


def rows_for_pairs(
    fmt: str, pairs: Iterable[Pair], prompt: PromptData, split: str, with_metadata: bool = True
) -> list[Row]:
    """Output rows for pairs of one prompt, rendering the prompt once for all of them."""
    writer = FORMATS.get(fmt)
    if writer is None:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {sorted(FORMATS)}")
    pair_rows = writer(prompt)
    output: list[Row] = []
    for pair in pairs:
        rows = pair_rows(pair)
        if with_metadata:
            metadata = metadata_columns(pair, prompt, split)
            for row in rows:
                row.update(metadata)
        output.extend(rows)
    return output


def rows_for_pair(
    fmt: str, pair: Pair, prompt: PromptData, split: str, with_metadata: bool = True
) -> list[Row]:
    """The output rows of one pair in format `fmt` (two rows for `trl-unpaired`)."""
    return rows_for_pairs(fmt, [pair], prompt, split, with_metadata)


# --- train/test split -------------------------------------------------------------------


def split_for_prompt(prompt_id: int, seed: int, test_fraction: float) -> str:
    """`"train"` or `"test"` for a prompt, from a seeded hash so every row of it lands together."""
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    digest = hashlib.sha256(f"{seed}:{prompt_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return TEST if position < test_fraction else TRAIN


# --- canonical JSON Lines ---------------------------------------------------------------
#
# The canonical form of a row is `orjson.dumps(row)` plus "\n": compact UTF-8 JSON (no
# spaces, non-ASCII kept as is), keys in insertion order, floats in their shortest
# round-trip form. For the rows exports produce this is the same text as Python's
# `json.dumps(row, ensure_ascii=False, separators=(",", ":"))`.


def encode_row(row: Row) -> bytes:
    """One canonical JSON line."""
    return orjson.dumps(row) + b"\n"


def _dump(value: Any) -> bytes:
    return orjson.dumps(value)


# Fragment heads: given one prompt, encode its texts once and return the function that gives
# the row heads (the format's own keys but `margin`, without the closing brace) of a
# (chosen id, rejected id) pair: one head per output row, each as pieces. The pieces are not
# concatenated here: long texts are copied once, when a batch is joined.
Head = tuple[bytes, ...]
HeadBuilder = Callable[[PromptData], Callable[[int, int], tuple[Head, ...]]]


def _paired_heads(
    prefix: bytes, rejected_key: bytes, encoded: dict[int, bytes]
) -> Callable[[int, int], tuple[Head, ...]]:
    """Heads of formats shaped `{<shared prefix ending in the chosen key>: chosen, <rejected
    key>: rejected`."""

    def heads(chosen_id: int, rejected_id: int) -> tuple[Head, ...]:
        return ((prefix, encoded[chosen_id], rejected_key, encoded[rejected_id]),)

    return heads


def _trl_standard_heads(prompt: PromptData) -> Callable[[int, int], tuple[Head, ...]]:
    prefix = b'{"prompt":' + _dump(prompt_text(prompt)) + b',"chosen":'
    return _paired_heads(prefix, b',"rejected":', _encoded_texts(prompt))


def _trl_conversational_heads(prompt: PromptData) -> Callable[[int, int], tuple[Head, ...]]:
    prefix = b'{"prompt":' + _dump(prompt_messages(prompt)) + b',"chosen":'
    return _paired_heads(prefix, b',"rejected":', _encoded_messages(prompt))


def _trl_unpaired_heads(prompt: PromptData) -> Callable[[int, int], tuple[Head, ...]]:
    prefix = b'{"prompt":' + _dump(prompt_text(prompt)) + b',"completion":'
    encoded = _encoded_texts(prompt)

    def heads(chosen_id: int, rejected_id: int) -> tuple[Head, ...]:
        return (
            (prefix, encoded[chosen_id], b',"label":true'),
            (prefix, encoded[rejected_id], b',"label":false'),
        )

    return heads


def _openai_heads(prompt: PromptData) -> Callable[[int, int], tuple[Head, ...]]:
    prefix = b'{"input":' + _dump({"messages": prompt_messages(prompt)}) + b',"preferred_output":'
    return _paired_heads(prefix, b',"non_preferred_output":', _encoded_messages(prompt))


def _hh_rlhf_heads(prompt: PromptData) -> Callable[[int, int], tuple[Head, ...]]:
    transcript = hh_rlhf_transcript(prompt)
    encoded = {
        response_id: _dump(f"{transcript}\n\nAssistant: {response.text}")
        for response_id, response in prompt.responses.items()
    }
    return _paired_heads(b'{"chosen":', b',"rejected":', encoded)


def _encoded_texts(prompt: PromptData) -> dict[int, bytes]:
    return {response_id: _dump(response.text) for response_id, response in prompt.responses.items()}


def _encoded_messages(prompt: PromptData) -> dict[int, bytes]:
    return {
        response_id: _dump(_assistant(response.text))
        for response_id, response in prompt.responses.items()
    }


_HEADS: dict[str, HeadBuilder] = {
    "trl": _trl_standard_heads,
    "trl-conversational": _trl_conversational_heads,
    "trl-reward": _trl_standard_heads,
    "trl-unpaired": _trl_unpaired_heads,
    "openai": _openai_heads,
    "hh-rlhf": _hh_rlhf_heads,
}
FORMATS_WITH_MARGIN = frozenset({"trl-reward"})
"""Formats whose own columns end with `margin` (metadata does not repeat it)."""


class _FragmentCache(dict[Any, bytes]):
    """`key` + encoded value, memoized: margins, agreements and rater keys repeat a lot."""

    def __init__(self, key: bytes) -> None:
        super().__init__()
        self._key = key

    def __missing__(self, value: Any) -> bytes:
        encoded = self._key + _dump(list(value) if isinstance(value, tuple) else value)
        self[value] = encoded
        return encoded


class _PromptEncoder:
    """Canonical JSON lines for one prompt's pairs, from fragments encoded once per prompt.

    Every row is cached pieces: the (chosen, rejected) head and identity columns before the
    margin, the margin, the segment between margin and agreement (trl-reward's metadata),
    the agreement, and the tail (n_raters onwards, the same for every pair of a ranking).
    Unused pieces are empty.
    """

    def __init__(self, fmt: str, prompt: PromptData, split: str, with_metadata: bool) -> None:
        builder = _HEADS.get(fmt)
        if builder is None:
            raise ValueError(f"unknown export format {fmt!r}; expected one of {sorted(FORMATS)}")
        self._heads = builder(prompt)
        self._margin_in_head = fmt in FORMATS_WITH_MARGIN
        self._with_metadata = with_metadata
        self._segments: dict[tuple[int, int], tuple[tuple[Head, bytes], ...]] = {}
        self._tails: dict[tuple[int, tuple[str, ...]], bytes] = {}
        self.margins = (
            _FragmentCache(b',"margin":') if with_metadata or self._margin_in_head else None
        )
        self.agreements = _FragmentCache(b',"agreement":') if with_metadata else None
        if with_metadata:
            self._prefix = (
                b',"prompt_id":'
                + _dump(prompt.prompt_id)
                + b',"prompt_external_id":'
                + _dump(prompt.external_id)
            )
            self._suffix = (
                b',"group_id":' + _dump(prompt.prompt_id) + b',"split":' + _dump(split) + b"}\n"
            )
            self._responses = {
                response_id: (_dump(response_id), _dump(response.model))
                for response_id, response in prompt.responses.items()
            }

    def segments(self, chosen_id: int, rejected_id: int) -> tuple[tuple[Head, bytes], ...]:
        heads = self._heads(chosen_id, rejected_id)
        if not self._with_metadata:
            rows = tuple((head, b"") for head in heads)
        else:
            chosen, chosen_model = self._responses[chosen_id]
            rejected, rejected_model = self._responses[rejected_id]
            identity = b"".join(
                (
                    self._prefix,
                    b',"chosen_id":',
                    chosen,
                    b',"rejected_id":',
                    rejected,
                    b',"chosen_model":',
                    chosen_model,
                    b',"rejected_model":',
                    rejected_model,
                )
            )
            # Key order: own columns, then metadata; trl-reward's margin is its own column.
            rows = tuple(
                (head, identity) if self._margin_in_head else ((*head, identity), b"")
                for head in heads
            )
        self._segments[(chosen_id, rejected_id)] = rows
        return rows

    def tail(self, n_raters: int, rater_keys: tuple[str, ...]) -> bytes:
        if not self._with_metadata:
            tail = b"}\n"
        else:
            tail = b"".join(
                (
                    b',"n_raters":',
                    _dump(n_raters),
                    b',"rater_keys":',
                    _dump(list(rater_keys)),
                    self._suffix,
                )
            )
        self._tails[(n_raters, rater_keys)] = tail
        return tail

    def encode(self, pairs: Iterable[Pair]) -> tuple[list[bytes], int]:
        parts: list[bytes] = []
        extend = parts.extend
        segments, tails = self._segments, self._tails
        margins, agreements = self.margins, self.agreements
        rows = 0
        for _, chosen_id, rejected_id, margin, agreement, n_raters, rater_keys in pairs:
            rows_of_pair = segments.get((chosen_id, rejected_id)) or self.segments(
                chosen_id, rejected_id
            )
            tail = tails.get((n_raters, rater_keys)) or self.tail(n_raters, rater_keys)
            margin_part = margins[margin] if margins is not None else b""
            agreement_part = agreements[agreement] if agreements is not None else b""
            for before, between in rows_of_pair:
                extend(before)
                extend((margin_part, between, agreement_part, tail))
                rows += 1
        return parts, rows


def encode_pairs(
    fmt: str, pairs: Iterable[Pair], prompt: PromptData, split: str, with_metadata: bool = True
) -> tuple[bytes, int]:
    """JSON Lines bytes and row count for pairs of one prompt.

    Byte for byte `b"".join(encode_row(row) for row in rows_for_pairs(...))`, but each text is
    encoded once per prompt instead of once per row.
    """
    parts, rows = encode_pair_parts(fmt, pairs, prompt, split, with_metadata)
    return b"".join(parts), rows


def encode_pair_parts(
    fmt: str, pairs: Iterable[Pair], prompt: PromptData, split: str, with_metadata: bool = True
) -> tuple[list[bytes], int]:
    """`encode_pairs` as unjoined pieces, so a batch is joined once, not once per prompt."""
    return _PromptEncoder(fmt, prompt, split, with_metadata).encode(pairs)


# --- file writers -----------------------------------------------------------------------


class FileResult(NamedTuple):
    rows: int
    sha256: str
    """Hex digest of the bytes written to the file (compressed bytes for gzip)."""
    size_bytes: int


JsonlResult = FileResult


class _CountingHashWriter:
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


class JsonlWriter:
    """Streams rows to a binary file as JSON Lines, optionally gzipped, byte-identically.

    Use as a context manager and call `write_rows` (dict rows) or `write_encoded` (lines
    already in canonical form) once per batch; `result()` after closing gives the row count
    and the sha256 and size of what reached the file.
    """

    def __init__(self, binary_file: IO[bytes], *, compress: bool = False) -> None:
        self._sink = _CountingHashWriter(binary_file)
        # mtime=0 and an empty file name keep the gzip header identical run to run.
        self._gzip = (
            gzip.GzipFile(
                filename="",
                mode="wb",
                fileobj=self._sink,  # type: ignore[arg-type]
                compresslevel=_GZIP_LEVEL,
                mtime=0,
            )
            if compress
            else None
        )
        self._rows = 0
        self._closed = False

    def write_rows(self, rows: Iterable[Row]) -> int:
        """Write a batch of rows; returns how many were written."""
        lines = [encode_row(row) for row in rows]
        self.write_encoded(b"".join(lines), len(lines))
        return len(lines)

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
        return self.result()

    def result(self) -> FileResult:
        return FileResult(self._rows, self._sink.sha256.hexdigest(), self._sink.size_bytes)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


_BATCH_ROWS = 1000


def write_jsonl(
    rows: Iterable[Row], binary_file: IO[bytes], *, compress: bool = False
) -> FileResult:
    """Stream `rows` to `binary_file` as JSON Lines in bounded batches."""
    with JsonlWriter(binary_file, compress=compress) as writer:
        batch: list[Row] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= _BATCH_ROWS:
                writer.write_rows(batch)
                batch = []
        writer.write_rows(batch)
    return writer.result()


def write_jsonl_gz(rows: Iterable[Row], binary_file: IO[bytes]) -> FileResult:
    """`write_jsonl` through gzip with a fixed header, so equal rows give equal bytes."""
    return write_jsonl(rows, binary_file, compress=True)


# --- Parquet ----------------------------------------------------------------------------

PARQUET_COMPRESSION = "zstd"


def parquet_schema(fmt: str, with_metadata: bool = True) -> pa.Schema:
    """The fixed Arrow schema of a format's rows; every batch is written against it."""
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    messages = pa.list_(message)
    own: dict[str, list[tuple[str, pa.DataType]]] = {
        "trl": [("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string())],
        "trl-conversational": [("prompt", messages), ("chosen", messages), ("rejected", messages)],
        "trl-reward": [
            ("prompt", pa.string()),
            ("chosen", pa.string()),
            ("rejected", pa.string()),
            ("margin", pa.float64()),
        ],
        "trl-unpaired": [
            ("prompt", pa.string()),
            ("completion", pa.string()),
            ("label", pa.bool_()),
        ],
        "openai": [
            ("input", pa.struct([("messages", messages)])),
            ("preferred_output", messages),
            ("non_preferred_output", messages),
        ],
        "hh-rlhf": [("chosen", pa.string()), ("rejected", pa.string())],
    }
    if fmt not in own:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {sorted(FORMATS)}")
    fields = list(own[fmt])
    if with_metadata:
        names = {name for name, _ in fields}
        metadata: list[tuple[str, pa.DataType]] = [
            ("prompt_id", pa.int64()),
            ("prompt_external_id", pa.string()),
            ("chosen_id", pa.int64()),
            ("rejected_id", pa.int64()),
            ("chosen_model", pa.string()),
            ("rejected_model", pa.string()),
            ("margin", pa.float64()),
            ("agreement", pa.float64()),
            ("n_raters", pa.int64()),
            ("rater_keys", pa.list_(pa.string())),
            ("group_id", pa.int64()),
            ("split", pa.string()),
        ]
        fields.extend(field for field in metadata if field[0] not in names)
    return pa.schema(fields)


class ArrowBatchBuilder:
    """Builds one Arrow table from many prompts' pairs, column by column.

    Equal to `pa.Table.from_pylist(rows_for_pairs(...), schema)` over the same prompts, but
    every prompt- and response-level value (the long texts and message lists) is converted
    to Arrow once and rows pick them by index with `take`.
    """

    def __init__(self, fmt: str, with_metadata: bool) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; expected one of {sorted(FORMATS)}")
        self.fmt = fmt
        self.with_metadata = with_metadata
        self.schema = parquet_schema(fmt, with_metadata)
        self._reset()

    def _reset(self) -> None:
        self.rows = 0
        self._prompt_values: list[Any] = []
        self._prompt_external_ids: list[str] = []
        self._prompt_splits: list[str] = []
        self._response_values: list[Any] = []
        self._response_models: list[str] = []
        self._rater_key_values: list[list[str]] = []
        self._rater_key_slots: dict[tuple[str, ...], int] = {}
        self._prompt_index: list[int] = []
        self._chosen_slots: list[int] = []
        self._rejected_slots: list[int] = []
        self._completion_slots: list[int] = []
        self._labels: list[bool] = []
        self._prompt_ids: list[int] = []
        self._chosen_ids: list[int] = []
        self._rejected_ids: list[int] = []
        self._margins: list[float] = []
        self._agreements: list[float] = []
        self._n_raters: list[int] = []
        self._rater_key_index: list[int] = []
        self.split_of_rows: list[tuple[str, int]] = []

    def add(self, prompt: PromptData, pairs: Sequence[Pair], split: str) -> int:
        fmt = self.fmt
        prompt_slot = len(self._prompt_values)
        if fmt in ("trl", "trl-reward", "trl-unpaired"):
            self._prompt_values.append(prompt_text(prompt))
        elif fmt == "trl-conversational":
            self._prompt_values.append(prompt_messages(prompt))
        elif fmt == "openai":
            self._prompt_values.append({"messages": prompt_messages(prompt)})
        else:
            self._prompt_values.append(None)
        self._prompt_external_ids.append(prompt.external_id)
        self._prompt_splits.append(split)
        transcript = hh_rlhf_transcript(prompt) if fmt == "hh-rlhf" else ""
        slots: dict[int, int] = {}
        for response_id, response in prompt.responses.items():
            slots[response_id] = len(self._response_values)
            if fmt in ("trl-conversational", "openai"):
                self._response_values.append(_assistant(response.text))
            elif fmt == "hh-rlhf":
                self._response_values.append(f"{transcript}\n\nAssistant: {response.text}")
            else:
                self._response_values.append(response.text)
            self._response_models.append(response.model)
        unpaired = fmt == "trl-unpaired"
        copies = 2 if unpaired else 1
        count = 0
        for pair in pairs:
            keys_slot = self._rater_key_slots.get(pair.rater_keys)
            if keys_slot is None:
                keys_slot = self._rater_key_slots[pair.rater_keys] = len(self._rater_key_values)
                self._rater_key_values.append(list(pair.rater_keys))
            chosen_slot, rejected_slot = slots[pair.chosen_id], slots[pair.rejected_id]
            if unpaired:
                self._completion_slots += (chosen_slot, rejected_slot)
                self._labels += (True, False)
            for _ in range(copies):
                self._chosen_slots.append(chosen_slot)
                self._rejected_slots.append(rejected_slot)
                self._prompt_index.append(prompt_slot)
                self._prompt_ids.append(pair.prompt_id)
                self._chosen_ids.append(pair.chosen_id)
                self._rejected_ids.append(pair.rejected_id)
                self._margins.append(pair.margin)
                self._agreements.append(pair.agreement)
                self._n_raters.append(pair.n_raters)
                self._rater_key_index.append(keys_slot)
            count += copies
        self.rows += count
        self.split_of_rows.append((split, count))
        return count

    def table(self) -> pa.Table:
        """The table of everything added since the last call; the builder starts afresh."""
        import pyarrow as pa

        schema = self.schema
        prompt_index = pa.array(self._prompt_index, pa.int32())
        chosen_index = pa.array(self._chosen_slots, pa.int32())
        rejected_index = pa.array(self._rejected_slots, pa.int32())

        def by_prompt(values: list[Any], name: str) -> pa.Array:
            return pa.array(values, schema.field(name).type).take(prompt_index)

        def by_response(values: list[Any], name: str, index: pa.Array) -> pa.Array:
            return pa.array(values, schema.field(name).type).take(index)

        columns: dict[str, pa.Array] = {}
        fmt = self.fmt
        responses = self._response_values
        if fmt == "trl-unpaired":
            completion_index = pa.array(self._completion_slots, pa.int32())
            columns["prompt"] = by_prompt(self._prompt_values, "prompt")
            columns["completion"] = by_response(responses, "completion", completion_index)
            columns["label"] = pa.array(self._labels, pa.bool_())
        else:
            chosen, rejected = ("chosen", "rejected")
            if fmt == "openai":
                chosen, rejected = ("preferred_output", "non_preferred_output")
                columns["input"] = by_prompt(self._prompt_values, "input")
            elif fmt != "hh-rlhf":
                columns["prompt"] = by_prompt(self._prompt_values, "prompt")
            columns[chosen] = by_response(responses, chosen, chosen_index)
            columns[rejected] = by_response(responses, rejected, rejected_index)
        if fmt == "trl-reward" or self.with_metadata:
            columns["margin"] = pa.array(self._margins, pa.float64())
        if self.with_metadata:
            models = pa.array(self._response_models, pa.string())
            rater_keys = pa.array(self._rater_key_values, pa.list_(pa.string()))
            prompt_ids = pa.array(self._prompt_ids, pa.int64())
            columns.update(
                {
                    "prompt_id": prompt_ids,
                    "prompt_external_id": by_prompt(
                        self._prompt_external_ids, "prompt_external_id"
                    ),
                    "chosen_id": pa.array(self._chosen_ids, pa.int64()),
                    "rejected_id": pa.array(self._rejected_ids, pa.int64()),
                    "chosen_model": models.take(chosen_index),
                    "rejected_model": models.take(rejected_index),
                    "agreement": pa.array(self._agreements, pa.float64()),
                    "n_raters": pa.array(self._n_raters, pa.int64()),
                    "rater_keys": rater_keys.take(pa.array(self._rater_key_index, pa.int32())),
                    "group_id": prompt_ids,
                    "split": by_prompt(self._prompt_splits, "split"),
                }
            )
        table = pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)
        self._reset()
        return table


class ParquetWriter:
    """Writes row batches to a binary file as Parquet with a fixed schema, one row group per
    batch, and hashes the bytes on their way out (Parquet bytes depend on the pyarrow
    version: same version, same data, same file)."""

    def __init__(self, binary_file: IO[bytes], schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        self._schema = schema
        self._sink = _CountingHashWriter(binary_file)
        self._writer = pq.ParquetWriter(
            self._sink,
            schema,
            compression=PARQUET_COMPRESSION,
            use_dictionary=True,
            write_statistics=True,
        )
        self._rows = 0
        self._closed = False

    def write_rows(self, rows: Sequence[Row]) -> int:
        import pyarrow as pa

        if not rows:
            return 0
        self.write_table(pa.Table.from_pylist(list(rows), schema=self._schema))
        return len(rows)

    def write_table(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table, row_group_size=table.num_rows)
            self._rows += table.num_rows

    def close(self) -> FileResult:
        if not self._closed:
            self._writer.close()
            self._sink.flush()
            self._closed = True
        return FileResult(self._rows, self._sink.sha256.hexdigest(), self._sink.size_bytes)


# --- export file sets -------------------------------------------------------------------


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

    Feed it prompt by prompt with `add`; `flush` writes what was added since the last flush
    (call it once per batch, which bounds memory and makes one Parquet row group); `close`
    gives a result per file. The same canonical bytes (or Arrow rows) go to the combined file
    and to the prompt's split file.

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
    ) -> None:
        if ALL not in files:
            raise ValueError("the combined file is required")
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; expected one of {sorted(FORMATS)}")
        self.fmt = fmt
        self.container = container
        self.with_metadata = with_metadata
        self._parts = list(files)
        self._parquet = container == "parquet"
        self._jsonl: dict[str, JsonlWriter] = {}
        self._arrow: dict[str, ParquetWriter] = {}
        if self._parquet:
            schema = parquet_schema(fmt, with_metadata)
            self._arrow = {part: ParquetWriter(handle, schema) for part, handle in files.items()}
        elif container in ("jsonl", "jsonl.gz"):
            compress = container == "jsonl.gz"
            self._jsonl = {
                part: JsonlWriter(handle, compress=compress) for part, handle in files.items()
            }
        else:
            raise ValueError(f"unknown container {container!r}")
        self._worker = _Worker() if background else _Inline()
        self._builder = ArrowBatchBuilder(fmt, with_metadata) if self._parquet else None
        self._row_splits: list[tuple[str | None, int]] = []
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
            parts, count = encode_pair_parts(self.fmt, pairs, prompt, split, self.with_metadata)
            self._pending_bytes[ALL].extend(parts)
            if split_part:
                self._pending_bytes[split_part].extend(parts)
        self._pending_counts[ALL] += count
        if split_part:
            self._pending_counts[split_part] += count
        self.rows_by_split[split] = self.rows_by_split.get(split, 0) + count
        return count

    def flush(self) -> None:
        if self._builder is not None:
            self._flush_arrow()
        else:
            for part in self._parts:
                data = b"".join(self._pending_bytes[part])
                self._pending_bytes[part] = []
                self._worker.submit(
                    self._jsonl[part].write_encoded, data, self._pending_counts[part]
                )
        self._pending_counts = dict.fromkeys(self._parts, 0)

    def _flush_arrow(self) -> None:
        import numpy as np
        import pyarrow as pa

        assert self._builder is not None
        if not self._builder.rows:
            return
        table = self._builder.table()
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
        writers: dict[str, JsonlWriter] | dict[str, ParquetWriter] = (
            self._arrow if self._parquet else self._jsonl
        )
        return {part: writer.close() for part, writer in writers.items()}


# --- reading back -----------------------------------------------------------------------


def read_first_rows(binary_file: IO[bytes], container: str, limit: int) -> list[Row]:
    """The first `limit` rows of an export file, for previews."""
    if limit <= 0:
        return []
    if container == "parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(binary_file)
        for batch in parquet.iter_batches(batch_size=limit):
            return batch.to_pylist()[:limit]
        return []
    stream: IO[bytes] = (
        gzip.GzipFile(fileobj=binary_file, mode="rb")  # type: ignore[assignment]
        if container == "jsonl.gz"
        else binary_file
    )
    rows: list[Row] = []
    for line in stream:
        if len(rows) >= limit:
            break
        if line.strip():
            rows.append(orjson.loads(line))
    return rows
