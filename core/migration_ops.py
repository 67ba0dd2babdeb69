"""Migration operations the apps share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db import migrations


def postgresql_only(forward: Sequence[str], backward: Sequence[str]) -> migrations.RunPython:
    """Run ``forward``'s statements on PostgreSQL (``backward``'s when the migration is
    unapplied) and nothing on any other database: what only PostgreSQL has, such as the
    generated binary columns the agreement reader reads."""
    return migrations.RunPython(_on_postgresql(forward), _on_postgresql(backward))


def _on_postgresql(statements: Sequence[str]) -> Callable[[Any, Any], None]:
    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)

    return run
