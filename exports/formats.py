"""Format writers: pairs to TRL/OpenAI/HH-RLHF rows, deterministic JSONL output and splits."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import IO, Any, NamedTuple, Self

from exports.pairs import Pair, PromptData

Row = dict[str, Any]
Message = dict[str, Any]
PairRows = Callable[[Pair], list[Row]]
FormatWriter = Callable[[PromptData], PairRows]

TRAIN = "train"
TEST = "test"

# One encoder for every row: same bytes as json.dumps with these arguments, without building
# an encoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=False)
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
    text = prompt_text(prompt)
    responses = _response_texts(prompt)

    def rows(pair: Pair) -> list[Row]:
        return [
            {
                "prompt": text,
                "chosen": responses[pair.chosen_id],
                "rejected": responses[pair.rejected_id],
                "margin": pair.margin,
            }
        ]

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


# --- JSON Lines output ------------------------------------------------------------------


class JsonlResult(NamedTuple):
    rows: int
    sha256: str
    """Hex digest of the bytes written to the file (compressed bytes for gzip)."""
    size_bytes: int


def encode_row(row: Row) -> str:
    """One canonical JSON line: UTF-8 text, no spaces, keys in insertion order."""
    return _ENCODER.encode(row) + "\n"


class _CountingHashWriter:
    """A write-only file wrapper that hashes and counts the bytes passing through."""

    def __init__(self, binary_file: IO[bytes]) -> None:
        self._file = binary_file
        self.sha256 = hashlib.sha256()
        self.size_bytes = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size_bytes += len(data)
        self._file.write(data)
        return len(data)

    def flush(self) -> None:
        self._file.flush()


class JsonlWriter:
    """Streams rows to a binary file as JSON Lines, optionally gzipped, byte-identically.

    Use as a context manager and call `write_rows` once per batch; `result()` after closing
    gives the row count and the sha256 and size of what reached the file.
    """

    def __init__(self, binary_file: IO[bytes], *, compress: bool = False) -> None:
        self._sink = _CountingHashWriter(binary_file)
        # mtime=0 and an empty file name keep the gzip header identical run to run.
        self._gzip = (
            gzip.GzipFile(
                filename="", mode="wb", fileobj=self._sink, compresslevel=_GZIP_LEVEL, mtime=0
            )
            if compress
            else None
        )
        self._rows = 0
        self._closed = False

    def write_rows(self, rows: Iterable[Row]) -> int:
        """Write a batch of rows; returns how many were written."""
        lines = [encode_row(row) for row in rows]
        if not lines:
            return 0
        data = "".join(lines).encode()
        if self._gzip is not None:
            self._gzip.write(data)
        else:
            self._sink.write(data)
        self._rows += len(lines)
        return len(lines)

    def close(self) -> JsonlResult:
        if not self._closed:
            if self._gzip is not None:
                self._gzip.close()
            self._sink.flush()
            self._closed = True
        return self.result()

    def result(self) -> JsonlResult:
        return JsonlResult(self._rows, self._sink.sha256.hexdigest(), self._sink.size_bytes)

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
) -> JsonlResult:
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


def write_jsonl_gz(rows: Iterable[Row], binary_file: IO[bytes]) -> JsonlResult:
    """`write_jsonl` through gzip with a fixed header, so equal rows give equal bytes."""
    return write_jsonl(rows, binary_file, compress=True)
