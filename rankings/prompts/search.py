"""Text search over a prompt's text (its messages' contents), one expression for both
databases.

PostgreSQL: `PromptSearchText` holds every prompt's current text, kept by triggers
(labeling migration 0010); its trigram GIN index covers the rows a search job marked
`indexed` (labeling.services.search_index). The search asks for both kinds of row, so the
planner reads the indexed ones through the index and the few, recent ones not indexed yet
through their own small index, rechecking their text: a prompt is found right after its
import, before its job ran. SQLite: the same match over `json_each(messages)`, a scan that
is fine at SQLite's scale. Case is ignored for every letter on PostgreSQL and for ASCII
letters on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, Expression
from django.db.models.sql.compiler import SQLCompiler

# One OR arm per partial index (the trigram one `WHERE indexed`, the small btree one
# `WHERE NOT indexed`), so the planner can combine both, or probe the row of each prompt.
_POSTGRESQL = """{prompt_id} IN (
    SELECT search.prompt_id FROM labeling_promptsearchtext AS search
    WHERE (search.indexed AND search.text ILIKE %s)
    OR (NOT search.indexed AND search.project_id = %s AND search.text ILIKE %s)
)"""
_SQLITE = """EXISTS (
    SELECT 1 FROM labeling_prompt AS searched, json_each(searched.messages) AS turn
    WHERE searched.id = {prompt_id}
    AND json_extract(turn.value, '$.content') LIKE %s ESCAPE '\\'
)"""


def like_pattern(words: str) -> str:
    """`%words%` with LIKE's own characters escaped (the escape character is `\\`)."""
    escaped = words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class PromptTextContains(Expression):
    """`PromptTextContains(F("pk"), "words", project_id=…)`: the text of the prompt with
    that id (a project's prompt) contains the words. A condition: `filter()` takes it."""

    conditional = True
    output_field = BooleanField()

    def __init__(self, prompt_id: Any, words: str, *, project_id: int) -> None:
        super().__init__()
        self.prompt_id = prompt_id
        self.words = words
        self.project_id = project_id

    def get_source_expressions(self) -> list[Any]:
        return [self.prompt_id]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        (self.prompt_id,) = exprs

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, tuple[Any, ...]]:
        id_sql, id_params = compiler.compile(self.prompt_id)
        pattern = like_pattern(self.words)
        if connection.vendor == "postgresql":
            sql = _POSTGRESQL.format(prompt_id=id_sql)
            return sql, (*id_params, pattern, self.project_id, pattern)
        return _SQLITE.format(prompt_id=id_sql), (*id_params, pattern)
