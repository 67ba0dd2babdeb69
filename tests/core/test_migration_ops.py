"""`core.migration_ops.postgresql_only`: statements for PostgreSQL, nothing elsewhere."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from core.migration_ops import postgresql_only


class RecordingEditor:
    def __init__(self, vendor: str) -> None:
        self.connection = SimpleNamespace(vendor=vendor)
        self.executed: list[str] = []

    def execute(self, statement: str) -> None:
        self.executed.append(statement)


@pytest.mark.parametrize(
    ("vendor", "forward", "backward"),
    [
        ("postgresql", ["CREATE a", "ALTER b"], ["ALTER c", "DROP d"]),
        ("sqlite", [], []),
    ],
)
def test_statements_run_in_order_on_postgresql_only(vendor, forward, backward):
    operation = postgresql_only(["CREATE a", "ALTER b"], ["ALTER c", "DROP d"])
    applying, unapplying = RecordingEditor(vendor), RecordingEditor(vendor)

    apply: Any = operation.code  # called as Django calls it: (apps, schema_editor)
    unapply: Any = operation.reverse_code
    apply(None, applying)
    unapply(None, unapplying)

    assert applying.executed == forward
    assert unapplying.executed == backward
    assert operation.reversible
