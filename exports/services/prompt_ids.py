"""Prompt id sets of incremental exports: packed into the job row, tested without a set."""

from __future__ import annotations

import zlib

import numpy as np

from exports.models import ExportJob

_PACKED_PREFIX = b"Z1"


def pack_prompt_ids(prompt_ids: np.ndarray) -> bytes:
    """Sorted unique ids, delta-encoded and compressed (a few bytes per thousand prompts)."""
    ids = np.unique(np.asarray(prompt_ids, dtype=np.int64))
    deltas = np.diff(ids, prepend=np.int64(0)).astype("<i8")
    return _PACKED_PREFIX + zlib.compress(deltas.tobytes(), 6)


def unpack_prompt_ids(packed: bytes | memoryview | None) -> np.ndarray:
    data = bytes(packed or b"")
    if not data:
        return np.zeros(0, dtype=np.int64)
    if not data.startswith(_PACKED_PREFIX):
        raise ValueError("unknown prompt id packing")
    deltas = np.frombuffer(zlib.decompress(data[len(_PACKED_PREFIX) :]), dtype="<i8")
    return np.cumsum(deltas, dtype=np.int64)


class PromptIdSet:
    """Membership tests against a sorted id array, without a Python set per id."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = ids

    def __contains__(self, prompt_id: object) -> bool:
        if not isinstance(prompt_id, int) or not len(self.ids):
            return False
        position = int(np.searchsorted(self.ids, prompt_id))
        return position < len(self.ids) and int(self.ids[position]) == prompt_id

    def __len__(self) -> int:
        return len(self.ids)


def earlier_prompt_ids(since_export: int | None) -> PromptIdSet:
    """The prompts the export `since_export` and the exports it continued covered."""
    if since_export is None:
        return PromptIdSet(np.zeros(0, dtype=np.int64))
    packed = (
        ExportJob.objects.filter(pk=since_export)
        .values_list("exported_prompt_ids", flat=True)
        .first()
    )
    return PromptIdSet(unpack_prompt_ids(packed))
