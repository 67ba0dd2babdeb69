"""Text search over a prompt's text (its messages' contents), one lookup for both databases.

PostgreSQL: `labeling_prompt_text(messages) ILIKE '%words%'`, served by the trigram GIN
index of labeling migration 0005 (which defines that function). SQLite: the same match
over `json_each(messages)`, a scan that is fine at SQLite's scale. Case is ignored for
every letter on PostgreSQL and for ASCII letters on SQLite.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Expression, Lookup
from django.db.models.sql.compiler import SQLCompiler


def like_pattern(words: str) -> str:
    """`%words%` with LIKE's own characters escaped (the escape character is `\\`)."""
    escaped = words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class PromptTextContains(Lookup):
    """`PromptTextContains(F("messages"), "words")`: the prompt's text contains the words."""

    lookup_name = "prompt_text_contains"
    prepare_rhs = False

    def __init__(self, lhs: Expression | Any, rhs: str) -> None:
        super().__init__(lhs, rhs)

    def get_prep_lookup(self) -> Any:
        return self.rhs  # a plain string, not a JSON value

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, tuple[Any, ...]]:
        lhs_sql, lhs_params = compiler.compile(self.lhs)
        params = (*lhs_params, like_pattern(str(self.rhs)))
        if connection.vendor == "postgresql":
            return f"labeling_prompt_text({lhs_sql}) ILIKE %s", params
        return (
            f"EXISTS (SELECT 1 FROM json_each({lhs_sql}) AS turn "
            f"WHERE json_extract(turn.value, '$.content') LIKE %s ESCAPE '\\')",
            params,
        )
