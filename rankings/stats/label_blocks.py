"""The labels of a project read block by block, as the reliability fit passes over them.

``LabelBlock`` holds a block of whole prompts' pair labels compactly (about 2 bytes a label
and 1 a unit), so a run keeps every block's labels in memory; ``blocks_e_step`` is one E
step over all of them: each group of each block cut into chunks (``split_into_chunks``),
the chunks spread over a thread pool and their sums added in a fixed order, so the result
is the same for any number of threads. ``rankings.stats.reliability`` builds the blocks
from ``PairLabels`` and fits the model with this E step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rankings.stats.tables import FloatArray, IntArray

CHUNK_UNITS = 1 << 18
"""Units per piece of an E step's work (``split_into_chunks``): a few MB of temporaries
each."""

Int8Array = npt.NDArray[np.int8]


@dataclass(frozen=True)
class Expectations:
    """An E step's sums over the units, from the per-unit log-odds that the first slot is
    better: per pattern, the summed posterior that the first slot is better; the posterior
    times ``longer`` (+1, 0, -1) summed; and, when asked for, ``log(1 + exp(log-odds))``
    summed (what ``objective`` needs of the pass)."""

    first_better: FloatArray
    toward_longer: float
    softplus: float


#: An E step: (per pattern its label's log-likelihood ratio, signed toward the first slot;
#: the log-odds of ``rho``; whether to sum the softplus) -> the sums. One pass over the labels.
EStep = Callable[[FloatArray, float, bool], Expectations]


@dataclass(frozen=True)
class LabelTotals:
    """What the fit needs of the labels besides the E steps, counted once before them."""

    per_pattern: FloatArray  # labels of each pattern
    units_by_longer: IntArray  # units, with labels or not, whose ``longer`` is -1, 0, +1

    @property
    def n_patterns(self) -> int:
        return len(self.per_pattern)


@dataclass(frozen=True)
class LabelBlock:
    """The labels of a block of whole prompts as the fit reads them, compactly: each label
    as its pattern (``PairLabels.patterns``) in the smallest unsigned type that holds the
    patterns, grouped by how many labels their unit has; per unit with labels its
    ``longer``; the units without labels only counted by ``longer`` (-1, 0, +1), since all
    they add to an iteration is their prior.

    The units with ``c`` labels are one group (``units_by_count[c]`` units), stored as ``c``
    columns of one pattern per unit (the group's slice of ``pattern`` is a (c, units) array
    in row order), so an E step is ``c`` gathers summed and ``c`` bincounts per group: no
    per-label repeat nor per-unit segment sums (several times faster than labels sorted by
    unit, at the same 2 bytes a label).

    A project too large to hold its labels as ``PairLabels`` is fitted block after block,
    with the same iterations as ``fit_reliability``: about 2 bytes per label and 1 per unit,
    so a run keeps every block's labels in memory and passes over them per iteration.
    """

    pattern: npt.NDArray[np.unsignedinteger[Any]]
    units_by_count: IntArray  # [c]: the labelled units with c labels
    longer: Int8Array  # per labelled unit, in group order
    unlabelled_longer: IntArray  # units without labels whose ``longer`` is -1, 0, +1

    @property
    def n_labels(self) -> int:
        return len(self.pattern)

    def groups(self) -> Iterator[tuple[npt.NDArray[np.unsignedinteger[Any]], Int8Array]]:
        """Per group with units: its patterns as (labels a unit, units), and its units'
        ``longer``."""
        label_start = unit_start = 0
        for count, units in enumerate(self.units_by_count.tolist()):
            if units == 0:
                continue
            label_stop, unit_stop = label_start + count * units, unit_start + units
            yield (
                self.pattern[label_start:label_stop].reshape(count, units),
                self.longer[unit_start:unit_stop],
            )
            label_start, unit_start = label_stop, unit_stop


def grouped_columns(by_unit: IntArray, units_by_count: IntArray) -> IntArray:
    """Labels sorted by group, then unit, rearranged so each group's are (count, units)."""
    parts, start = [], 0
    for count, units in enumerate(units_by_count.tolist()):
        if units == 0:
            continue
        stop = start + count * units
        parts.append(by_unit[start:stop].reshape(units, count).T.reshape(-1))
        start = stop
    return np.concatenate(parts) if parts else by_unit[:0]


def smallest_unsigned(largest: int) -> np.dtype[Any]:
    for kind in (np.uint8, np.uint16, np.uint32):
        if largest <= np.iinfo(kind).max:
            return np.dtype(kind)
    return np.dtype(np.uint64)


def logistic(log_odds: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-log_odds))


def log1p_exp(value: float) -> float:
    """``log(1 + exp(value))``."""
    return float(np.logaddexp(0.0, value))


def _softplus_sum(values: FloatArray, first_better: FloatArray) -> float:
    """``log(1 + exp(value))`` summed, from the values and their logistic ``first_better``
    (which the E step has computed): ``max(value, 0) - log(max(p, 1 - p))``, the same to
    rounding as ``np.logaddexp(0, value)`` at a fraction of its CPU (one log, no exp)."""
    larger = np.maximum(first_better, 1.0 - first_better)
    return float(np.maximum(values, 0.0).sum() - np.log(larger).sum())


@dataclass(frozen=True)
class _Chunk:
    """A slice of one group's units (``LabelBlock.groups``): its patterns as (labels a
    unit, units) and its units' ``longer``. An E step's unit of work."""

    columns: npt.NDArray[np.unsignedinteger[Any]]
    longer: Int8Array


def split_into_chunks(blocks: Sequence[LabelBlock], units: int) -> list[_Chunk]:
    """Every group of every block cut into slices of at most ``units`` units, in block,
    group and unit order: the E step sums them in this order, so its result depends on
    neither the number of threads nor which finishes first."""
    chunks = []
    for block in blocks:
        for columns, longer in block.groups():
            for start in range(0, len(longer), units):
                chunks.append(
                    _Chunk(columns[:, start : start + units], longer[start : start + units])
                )
    return chunks


def _chunk_e_step(
    chunk: _Chunk,
    signed: FloatArray,
    rho_log_odds: float,
    n_patterns: int,
    with_objective: bool,
) -> Expectations:
    """One chunk's share of an E step (``Expectations``)."""
    direction = chunk.longer.astype(np.float64)
    log_odds = direction * rho_log_odds
    for column in chunk.columns:
        log_odds += signed.take(column)
    first_better = logistic(log_odds)
    first_better_sum = np.zeros(n_patterns)
    for column in chunk.columns:
        first_better_sum += np.bincount(column, weights=first_better, minlength=n_patterns)
    return Expectations(
        first_better=first_better_sum,
        # einsum, not ``@``: BLAS would spread a dot over threads of its own, and those
        # spin beside the pool's.
        toward_longer=float(np.einsum("i,i->", direction, first_better)),
        softplus=_softplus_sum(log_odds, first_better) if with_objective else math.nan,
    )


def blocks_e_step(
    blocks: Sequence[LabelBlock], n_raters: int, pool: ThreadPoolExecutor | None
) -> tuple[EStep, LabelTotals]:
    """The E step over the blocks' labels (a pass over them each, its chunks spread over
    ``pool``'s threads: numpy's gathers, bincounts and arithmetic release the GIL), and
    the totals, counted once."""
    n_patterns = n_raters * 18
    per_pattern = np.zeros(n_patterns)
    units_by_longer = np.zeros(3, dtype=np.int64)
    unlabelled = np.zeros(3, dtype=np.int64)  # units without labels, by ``longer``
    for block in blocks:
        per_pattern += np.bincount(block.pattern, minlength=n_patterns)
        units_by_longer += np.bincount(block.longer.astype(np.int64) + 1, minlength=3)
        unlabelled += block.unlabelled_longer
    units_by_longer += unlabelled
    chunks = split_into_chunks(blocks, CHUNK_UNITS)

    def e_step(signed: FloatArray, rho_log_odds: float, with_objective: bool) -> Expectations:
        # Units without labels: only their prior, the same for every unit of a direction.
        longer_first = float(logistic(np.array(rho_log_odds)))
        toward_longer = unlabelled[2] * longer_first - unlabelled[0] * (1.0 - longer_first)
        softplus = (
            unlabelled[2] * log1p_exp(rho_log_odds)
            + unlabelled[0] * log1p_exp(-rho_log_odds)
            + unlabelled[1] * math.log(2.0)
            if with_objective
            else math.nan
        )

        def one(chunk: _Chunk) -> Expectations:
            return _chunk_e_step(chunk, signed, rho_log_odds, n_patterns, with_objective)

        first_better = np.zeros(n_patterns)
        for sums in pool.map(one, chunks) if pool is not None else map(one, chunks):
            first_better += sums.first_better
            toward_longer += sums.toward_longer
            softplus += sums.softplus
        return Expectations(
            first_better=first_better, toward_longer=float(toward_longer), softplus=softplus
        )

    return e_step, LabelTotals(per_pattern=per_pattern, units_by_longer=units_by_longer)
