"""COPY text built with numpy: rows as a byte matrix, each field in a fixed-width column of
it, NUL bytes where a field is shorter than its column, then every NUL dropped at once.

A run stores a row per prompt, millions at 10M rankings; formatting them with Python's
``%`` held the GIL ~4 us a row on the side thread that stores them, while the run's own
thread waited for it. Here each column is a few array operations over the whole block
(numpy releases the GIL for most of them). NUL never occurs in COPY text, so it can mark
the padding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

ByteMatrix = npt.NDArray[np.uint8]
_NUL = 0
_ZERO = ord("0")


class Rows:
    """A block of rows built column by column, then ``text()`` at once.

    Columns are written straight into one byte matrix (no copy per column); a column can
    be left out of some rows (``blank``: NUL there).
    """

    def __init__(self, n_rows: int) -> None:
        self.n_rows = n_rows
        self._columns: list[tuple[ByteMatrix, npt.NDArray[np.bool_] | None]] = []

    def add(self, column: ByteMatrix, *, blank: npt.NDArray[np.bool_] | None = None) -> None:
        self._columns.append((column, blank))

    def add_text(self, text: str, *, blank: npt.NDArray[np.bool_] | None = None) -> None:
        """The same text on every row (but the blank ones)."""
        self.add(np.frombuffer(text.encode(), dtype=np.uint8)[np.newaxis, :], blank=blank)

    def add_either(
        self, condition: npt.NDArray[np.bool_], when_true: str, when_false: str, *,
        blank: npt.NDArray[np.bool_] | None = None,
    ) -> None:  # fmt: skip
        """Per row, one text or the other."""
        width = max(len(when_true), len(when_false))
        true_row, false_row = (
            np.frombuffer(text.encode().ljust(width, b"\0"), dtype=np.uint8)
            for text in (when_true, when_false)
        )
        matrix = np.empty((self.n_rows, width), dtype=np.uint8)
        matrix[...] = false_row
        matrix[condition] = true_row
        self.add(matrix, blank=blank)

    def text(self) -> bytes:
        """The columns side by side, row after row, without their NUL padding."""
        width = sum(column.shape[1] for column, _ in self._columns)
        matrix = np.empty((self.n_rows, width), dtype=np.uint8)
        start = 0
        for column, blank in self._columns:
            stop = start + column.shape[1]
            matrix[:, start:stop] = column
            if blank is not None:
                matrix[blank, start:stop] = _NUL
            start = stop
        flat = matrix.reshape(-1)
        text: bytes = flat[flat != _NUL].tobytes()
        return text


def decimal(values: npt.ArrayLike, *, width: int | None = None) -> ByteMatrix:
    """Non-negative integers in decimal, right-aligned (NUL before the first digit).

    With ``width``, exactly that many digits, zeros in front (a fraction's digits).
    """
    numbers = np.asarray(values, dtype=np.int64)
    if numbers.size and int(numbers.min()) < 0:
        raise ValueError("decimal() formats non-negative integers")
    digits_wide = width or len(str(int(numbers.max()) if numbers.size else 0))
    digits = np.empty((len(numbers), digits_wide), dtype=np.uint8)
    left = numbers.copy()
    for place in range(digits_wide - 1, -1, -1):  # a digit per step, from the right
        blank = left == 0 if width is None and place < digits_wide - 1 else None
        left, digit = np.divmod(left, 10)
        digits[:, place] = digit + _ZERO
        if blank is not None:
            digits[blank, place] = _NUL  # before the first digit (zero itself is "0")
    return digits


def fixed_point(scaled: npt.ArrayLike, decimals: int) -> ByteMatrix:
    """Integers ``n`` as ``n / 10**decimals`` with exactly ``decimals`` decimals: what
    ``"%.{decimals}f" % (n / 10**decimals)`` prints, for ``n`` of at most 15 digits."""
    numbers = np.asarray(scaled, dtype=np.int64)
    magnitude = np.abs(numbers)
    sign = np.where(numbers < 0, ord("-"), _NUL).astype(np.uint8)[:, np.newaxis]
    point = np.full((len(numbers), 1), ord("."), dtype=np.uint8)
    whole, fraction = np.divmod(magnitude, 10**decimals)
    return np.hstack([sign, decimal(whole), point, decimal(fraction, width=decimals)])


def by_distinct_values(
    values: Sequence[Any] | npt.NDArray[Any], text_of: Callable[[Any], str]
) -> ByteMatrix:
    """``text_of(value)`` per value, formatted once per distinct value (few distinct
    values: ratios of small counts, say)."""
    distinct, inverse = np.unique(np.asarray(values), return_inverse=True)
    texts = [text_of(value) for value in distinct.tolist()]
    width = max((len(text) for text in texts), default=0)
    table = np.zeros((len(texts), max(width, 1)), dtype=np.uint8)
    for row, text in enumerate(texts):
        table[row, : len(text)] = np.frombuffer(text.encode(), dtype=np.uint8)
    return table[inverse.reshape(-1)]
