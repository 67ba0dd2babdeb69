"""Rankings as read from the database, before dense indexing, and the array helpers both
readers (``portable``, ``postgresql``) and the assembly (``data``) share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rankings.stats.tables import FloatArray, IntArray

PromptRange = tuple[int, int]
"""Prompt ids ``(low, high]``: the prompts of one part of a run."""


@dataclass
class RawRankings:
    """Rankings as read, one row per ranking in any order, before dense indexing.

    ``group_ids[r]`` holds the ranking's response ids best first and ``group_levels[r]``
    their tie level (1 = best); ``shown_ids(rows)`` gives the response ids in shown order.
    Rows are padded with id -1 and level 0. Responses: every response of the project's
    prompts.
    """

    ranking_ids: IntArray
    prompt_ids: IntArray
    rater_ids: IntArray
    is_repeat: npt.NDArray[np.bool_]
    seconds: FloatArray
    group_ids: IntArray
    group_levels: npt.NDArray[np.int8]
    shown_ids: Callable[[IntArray], IntArray]  # the shown-order matrix of the given rows
    response_ids: IntArray
    response_prompts: IntArray
    response_positions: IntArray
    response_lengths: IntArray


def dense_index(values: IntArray) -> tuple[IntArray, IntArray]:
    """The distinct values, sorted, and the index of each value among them."""
    values_sorted = distinct(values)
    return values_sorted, IdLookup(values_sorted)(values)


def distinct(values: IntArray) -> IntArray:
    ordered = np.sort(values.astype(np.int64))
    keep = np.ones(len(ordered), dtype=bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    return ordered[keep]


class IdLookup:
    """Where each id stands in a list of distinct ids (-1 if absent).

    A direct table when the ids are dense enough (imports take consecutive ids), else a
    binary search.
    """

    def __init__(self, ids: IntArray) -> None:
        self.low = int(ids.min()) if ids.size else 0
        span = int(ids.max()) - self.low + 1 if ids.size else 0
        self.table: IntArray | None = None
        if span <= 4 * ids.size + 1024:
            self.table = np.full(span, -1, dtype=np.int64)
            self.table[ids - self.low] = np.arange(ids.size)
        else:
            self.order = np.argsort(ids)
            self.sorted = ids[self.order]

    def __call__(self, values: IntArray) -> IntArray:
        if self.table is not None:
            offset = values - self.low
            inside = (offset >= 0) & (offset < len(self.table))
            return np.where(inside, self.table[np.where(inside, offset, 0)], -1)
        if self.sorted.size == 0:
            return np.full(len(values), -1, dtype=np.int64)
        index = np.minimum(np.searchsorted(self.sorted, values), self.sorted.size - 1)
        return np.where(self.sorted[index] == values, self.order[index], -1)


def padded(rows: list[list[int]], fill: int, dtype: Any) -> npt.NDArray[Any]:
    """Lists of different lengths as one matrix, padded with ``fill``."""
    width = max((len(row) for row in rows), default=0)
    matrix = np.full((len(rows), width), fill, dtype=dtype)
    for index, row in enumerate(rows):
        matrix[index, : len(row)] = row
    return matrix


def stacked(parts: list[npt.NDArray[Any]], fill: int, dtype: Any) -> npt.NDArray[Any]:
    """Matrices of different widths stacked row-wise, padded with ``fill``."""
    width = max((part.shape[1] for part in parts), default=0)
    rows = sum(len(part) for part in parts)
    matrix = np.full((rows, width), fill, dtype=dtype)
    start = 0
    for part in parts:
        matrix[start : start + len(part), : part.shape[1]] = part
        start += len(part)
    return matrix
