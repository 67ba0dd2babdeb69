"""How far a text moved from another: a unified diff and the character edit distance.

Pure Python (no Django). The edit distance is Levenshtein's over characters (insertions,
deletions and substitutions each count one), computed by rapidfuzz; `edit_share` scales it
by the longer text so short and long replies compare.
"""

from __future__ import annotations

import difflib

from rapidfuzz.distance import Levenshtein


def edit_distance(before: str, after: str) -> int:
    return int(Levenshtein.distance(before, after))


def edit_share(before: str, after: str) -> float:
    """The edit distance over the longer text's length: 0 unchanged, 1 all new."""
    longest = max(len(before), len(after))
    return 0.0 if longest == 0 else edit_distance(before, after) / longest


def unified_diff(before: str, after: str, *, before_name: str, after_name: str) -> str:
    """Line diff from `before` to `after` (`patch` applies it); empty when they are equal."""
    if before == after:
        return ""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=before_name,
        tofile=after_name,
    )
    # A last line without a newline would run into the next diff line.
    return "".join(
        line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n" for line in lines
    )
