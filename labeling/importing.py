"""Parse and validate prompt import records (JSON list or JSON Lines); no database access.

Every problem is reported with the line (1-based record number for a JSON list) and the
field, so a file with one bad record is refused whole with a message that points at it.
A body in memory is split into lines decoded as they are validated (`parse_import_body`;
a JSON list is decoded whole); a JSON Lines file is read one line at a time
(`read_json_lines`), so a file of any size is validated in batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice, pairwise
from pathlib import Path
from typing import IO, Any, BinaryIO

import orjson

from core.errors import InvalidInput
from labeling.models import MAX_RESPONSES

MESSAGE_ROLES = {"system", "user", "assistant"}
MAX_TEXT_CHARS = 200_000
MAX_METADATA_DEPTH = 16
UTF8_BOM = b"\xef\xbb\xbf"
TOO_LARGE_ADVICE = "import it with the command (manage.py import_prompts) or in parts"
COUNT_CHUNK = 1 << 20
RECORD_FIELDS = frozenset(
    {"external_id", "prompt", "messages", "responses", "metadata", "gold_ranking", "id"}
)
RESPONSE_FIELDS = frozenset({"external_id", "id", "text", "model", "metadata"})


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which cost an
# import a seventh of its validation (five records a prompt). Nothing changes them.
@dataclass(slots=True)
class ResponseRecord:
    text: str
    external_id: str = ""
    model: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class PromptRecord:
    line: int
    messages: list[dict[str, str]]
    responses: list[ResponseRecord]
    external_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    gold_ranking: list[list[int]] | None = None  # tie groups of response positions


class LineError(InvalidInput):
    """A problem on one line of an import; the message names the line."""

    def __init__(self, line: int, message: str, field_name: str):
        super().__init__(message, field=field_name)
        self.line = line


class RecordError(LineError):
    def __init__(self, line: int, field_name: str, problem: str):
        super().__init__(line, f"line {line}: {field_name}: {problem}", field_name)
        self.problem = problem


def parse_import_body(raw: bytes | str | object) -> Iterator[tuple[int, Any]]:
    """Split a JSON list or JSON Lines payload into (line number, decoded value) pairs.

    JSON Lines are decoded as they are consumed, so a body's decoded records are never all
    in memory at once (an import holds a few batches) and its first batch is written while
    the rest is decoded; a bad line raises where it is reached. A JSON list is decoded whole
    here."""
    if not isinstance(raw, bytes | str):  # an empty request body arrives as a parsed {}
        raise InvalidInput("the import is empty", field="body")
    # orjson reads bytes directly and checks their UTF-8 itself; no decoded copy of the body.
    data = (raw.encode() if isinstance(raw, str) else raw).removeprefix(UTF8_BOM)
    stripped = data.lstrip()
    if not stripped:
        raise InvalidInput("the import is empty", field="body")
    if stripped.startswith(b"["):
        values = _decode_json_list(data)
        return enumerate(values, start=1)
    # Lines end at "\n" only: a JSON string may hold U+2028 or a lone "\r" unescaped.
    return _decoded_lines(enumerate(data.split(b"\n"), start=1))


def _decoded_lines(lines: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, Any]]:
    for line_number, line in lines:
        if not line or line.isspace():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise _line_error(line_number, line, error) from error
        yield line_number, value


def _line_error(line_number: int, line: bytes, error: orjson.JSONDecodeError) -> InvalidInput:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return LineError(
            line_number,
            f"line {line_number}: not valid UTF-8 (byte {bad.start + 1} of the line)",
            "body",
        )
    return RecordError(line_number, "json", f"not valid JSON ({error.msg})")


def _decode_json_list(data: bytes) -> list[Any]:
    try:
        values = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            line = data[: bad.start].count(b"\n") + 1
            raise InvalidInput(
                f"line {line}: not valid UTF-8 (byte {bad.start + 1})", field="body"
            ) from error
        raise InvalidInput(
            f"line {error.lineno}: not valid JSON ({error.msg})", field="body"
        ) from error
    if not isinstance(values, list):
        raise InvalidInput("the import must be a JSON list or JSON Lines", field="body")
    return values


def starts_as_json_list(stream: IO[bytes]) -> bool:
    """Whether a seekable file holds a JSON list (read whole) rather than JSON Lines."""
    start = stream.read(4096).removeprefix(UTF8_BOM).lstrip()
    stream.seek(0)
    return start.startswith(b"[")


def read_json_lines(
    stream: IO[bytes], *, first_line: int = 1, end: int | None = None
) -> Iterator[tuple[int, Any]]:
    """Decode a JSON Lines file lazily, one (line number, value) per non-blank line.

    From the stream's position, numbered from `first_line`, up to the byte offset `end`
    (a line boundary) when given: one writer's range of a file (`file_ranges`)."""
    lines = enumerate(stream if end is None else _lines_until(stream, end), start=first_line)
    first = next(lines, None)
    if first is not None:
        text = first[1].removeprefix(UTF8_BOM) if first_line == 1 else first[1]
        yield from _decoded_lines([(first[0], text)])
    yield from _decoded_lines(lines)


def _lines_until(stream: IO[bytes], end: int) -> Iterator[bytes]:
    position = stream.tell()
    while position < end and (line := stream.readline()):
        position += len(line)
        yield line


@dataclass(frozen=True)
class FileRange:
    """Whole lines of a file, read on their own (one writer's share of a staged import)."""

    index: int
    start: int  # byte offset of its first line
    end: int  # byte offset just past its last line
    first_line: int
    lines: int  # its records are at most this many (blank lines hold none)


def file_ranges(path: Path, count: int) -> list[FileRange]:
    """Cut a file into up to `count` ranges of whole lines, about equal in bytes, and count
    each range's lines (a C loop over the bytes, not a Python one over the lines)."""
    size = path.stat().st_size
    starts = [0]
    with path.open("rb") as stream:
        for part in range(1, count):
            stream.seek(max(size * part // count - 1, starts[-1]))
            stream.readline()
            if starts[-1] < stream.tell() < size:
                starts.append(stream.tell())
        ranges, before = [], 0
        for index, (start, end) in enumerate(pairwise([*starts, size])):
            lines = _lines_between(stream, start, end)
            ranges.append(FileRange(index, start, end, before + 1, lines))
            before += lines
    return ranges


def _lines_between(stream: BinaryIO, start: int, end: int) -> int:
    stream.seek(start)
    lines, last = 0, b""
    while (left := end - stream.tell()) > 0 and (chunk := stream.read(min(left, COUNT_CHUNK))):
        lines, last = lines + chunk.count(b"\n"), chunk[-1:]
    return lines + (1 if last not in (b"", b"\n") else 0)


def external_id_lines(
    path: Path, external_ids: set[str], *, before: int | None = None
) -> dict[str, list[int]]:
    """The lines of a JSON Lines file (those before line `before`, when given) holding each
    of `external_ids`, read again in flat memory: how a refused repeat is named. A line that
    does not validate is passed over; the import reports it where it reads it."""
    found: dict[str, list[int]] = {}
    with path.open("rb") as stream:
        for line, value in read_json_lines(stream):
            if before is not None and line >= before:
                break
            try:
                external_id = validate_record(line, value).external_id
            except InvalidInput:
                continue
            if external_id in external_ids:
                found.setdefault(external_id, []).append(line)
    return found


def validated_batches(
    items: Iterable[tuple[int, Any]],
    *,
    size: int,
    seen: dict[str, int] | None = None,
    first_size: int | None = None,
) -> Iterator[list[PromptRecord]]:
    """Validate records batch by batch. An external_id repeated inside a batch is refused
    here, and across batches too when `seen` is given (it grows with the import). Without
    it a repeat across batches is left to the database's unique constraint, so a file of
    any size is read in flat memory. A smaller first batch (`first_size`) lets the
    database start writing while the rest is still validated."""
    iterator = iter(items)
    next_size = first_size or size
    while batch := list(islice(iterator, next_size)):
        next_size = size
        records = [validate_record(line, value) for line, value in batch]
        _refuse_repeated_external_ids(records, {} if seen is None else seen)
        yield records


def validate_records(items: Iterable[tuple[int, Any]]) -> list[PromptRecord]:
    records = [validate_record(line, value) for line, value in items]
    if not records:
        raise InvalidInput("the import has no records", field="body")
    _refuse_repeated_external_ids(records, {})
    return records


def _refuse_repeated_external_ids(records: list[PromptRecord], seen: dict[str, int]) -> None:
    for record in records:
        if record.external_id:
            if record.external_id in seen:
                raise RecordError(
                    record.line,
                    "external_id",
                    f"{record.external_id!r} repeats line {seen[record.external_id]}",
                )
            seen[record.external_id] = record.line


def validate_record(line: int, value: Any) -> PromptRecord:
    if not isinstance(value, dict):
        raise RecordError(line, "record", "must be a JSON object")
    if not value.keys() <= RECORD_FIELDS:
        raise RecordError(line, min(value.keys() - RECORD_FIELDS), "unknown field")
    external_id = _optional_string(line, "external_id", value.get("external_id", value.get("id")))
    messages = _messages(line, value)
    responses = _responses(line, value.get("responses", []))
    metadata = _metadata(line, "metadata", value.get("metadata"))
    gold = _gold_ranking(line, value.get("gold_ranking"), responses)
    return PromptRecord(
        line=line,
        messages=messages,
        responses=responses,
        external_id=external_id,
        metadata=metadata,
        gold_ranking=gold,
    )


def _optional_string(line: int, name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise RecordError(line, name, "must be a string")
    if len(value) > 200:
        raise RecordError(line, name, "must be at most 200 characters")
    return _without_nul(line, name, value)


def _text(line: int, name: str, value: Any) -> str:
    if not isinstance(value, str) or not value or value.isspace():
        raise RecordError(line, name, "must be a non-empty string")
    if len(value) > MAX_TEXT_CHARS:
        raise RecordError(line, name, f"must be at most {MAX_TEXT_CHARS} characters")
    return _without_nul(line, name, value)


def _without_nul(line: int, name: str, value: str) -> str:
    # PostgreSQL cannot store U+0000 in text or JSON; refuse it here for every database.
    if "\x00" in value:
        raise RecordError(line, name, "must not contain the NUL character (\\u0000)")
    return value


def _metadata(line: int, name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(line, name, "must be a JSON object")
    _check_json(line, name, value, depth=1)
    return value


def _check_json(line: int, name: str, value: Any, *, depth: int) -> None:
    """Metadata is stored as JSON on every database: no NUL anywhere, bounded nesting, and
    numbers a 64-bit column could hold (larger integers would silently become floats)."""
    if depth > MAX_METADATA_DEPTH:
        raise RecordError(line, name, f"nests deeper than {MAX_METADATA_DEPTH} levels")
    if isinstance(value, str):
        _without_nul(line, name, value)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        if abs(value) >= 2**63 and float(value).is_integer():
            raise RecordError(line, name, "is a number outside the 64-bit range")
    elif isinstance(value, dict):
        for key, item in value.items():
            _without_nul(line, f"{name} key", key)
            _check_json(line, f"{name}.{key}", item, depth=depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(line, f"{name}[{index}]", item, depth=depth + 1)


def _messages(line: int, value: dict[str, Any]) -> list[dict[str, str]]:
    has_prompt, has_messages = "prompt" in value, "messages" in value
    if has_prompt == has_messages:
        raise RecordError(line, "prompt", "give exactly one of 'prompt' or 'messages'")
    if has_prompt:
        return [{"role": "user", "content": _text(line, "prompt", value["prompt"])}]
    raw = value["messages"]
    if not isinstance(raw, list) or not raw:
        raise RecordError(line, "messages", "must be a non-empty list of {role, content}")
    messages = []
    for index, message in enumerate(raw):
        name = f"messages[{index}]"
        if not isinstance(message, dict):
            raise RecordError(line, name, "must be an object with role and content")
        role = message.get("role")
        if role not in MESSAGE_ROLES:
            raise RecordError(line, f"{name}.role", f"must be one of {sorted(MESSAGE_ROLES)}")
        messages.append(
            {"role": role, "content": _text(line, f"{name}.content", message.get("content"))}
        )
    if messages[-1]["role"] == "assistant":
        raise RecordError(line, "messages", "must end with a user or system turn")
    return messages


def _responses(line: int, raw: Any) -> list[ResponseRecord]:
    if not isinstance(raw, list):
        raise RecordError(line, "responses", "must be a list")
    if len(raw) > MAX_RESPONSES:
        raise RecordError(
            line, "responses", f"takes at most {MAX_RESPONSES} responses, got {len(raw)}"
        )
    responses: list[ResponseRecord] = []
    seen_ids: set[str] = set()
    for index, item in enumerate(raw):
        try:
            response = _response(line, item, seen_ids)
        except RecordError as error:  # the field's name is spelled out only for an error
            name = f"responses[{index}]" + ("" if error.field == "." else f".{error.field}")
            raise RecordError(line, name, error.problem) from None
        seen_ids.add(response.external_id)
        responses.append(response)
    return responses


def _response(line: int, item: Any, seen_ids: set[str]) -> ResponseRecord:
    """One response; errors name its fields relative to it ("." for the response itself)."""
    if isinstance(item, str):
        item = {"text": item}
    if not isinstance(item, dict):
        raise RecordError(line, ".", "must be an object with text")
    if not item.keys() <= RESPONSE_FIELDS:
        raise RecordError(line, min(item.keys() - RESPONSE_FIELDS), "unknown field")
    external_id = _optional_string(line, "external_id", item.get("external_id", item.get("id")))
    if external_id and external_id in seen_ids:
        raise RecordError(line, "external_id", f"{external_id!r} is used twice")
    return ResponseRecord(
        text=_text(line, "text", item.get("text")),
        external_id=external_id,
        model=_optional_string(line, "model", item.get("model")),
        metadata=_metadata(line, "metadata", item.get("metadata")),
    )


def _gold_ranking(line: int, raw: Any, responses: list[ResponseRecord]) -> list[list[int]] | None:
    """Gold ranking as tie groups of response external ids or 0-based positions."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise RecordError(line, "gold_ranking", "must be a non-empty list of tie groups")
    position_of = {r.external_id: i for i, r in enumerate(responses) if r.external_id}
    groups: list[list[int]] = []
    for group_index, group in enumerate(raw):
        members = group if isinstance(group, list) else [group]
        if not members:
            raise RecordError(line, f"gold_ranking[{group_index}]", "is an empty group")
        positions = []
        for member in members:
            if isinstance(member, str) and member in position_of:
                positions.append(position_of[member])
            elif (
                isinstance(member, int)
                and not isinstance(member, bool)
                and 0 <= member < len(responses)
            ):
                positions.append(member)
            else:
                raise RecordError(
                    line,
                    f"gold_ranking[{group_index}]",
                    f"{member!r} is neither a response external_id nor a response index",
                )
        groups.append(positions)
    flat = [p for group in groups for p in group]
    if sorted(flat) != list(range(len(responses))):
        raise RecordError(line, "gold_ranking", "must place every response exactly once")
    return groups
