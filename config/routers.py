"""The read-replica router, installed when DATABASE_REPLICA_URL is set (config/settings.py).

Reads inside `core.db.replica_reads()` go to the replica; every other read and every write
go to the primary. Job rows (claims, heartbeats, results) are always the primary's: they
coordinate workers and must never be read stale.
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Model

from core.db import REPLICA, replica_reads_active
from core.jobs import Job


class ReplicaRouter:
    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        if replica_reads_active() and not issubclass(model, Job):
            return REPLICA
        return DEFAULT_DB_ALIAS

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, first: Model, second: Model, **hints: Any) -> bool:
        # The replica holds the primary's rows: objects read from either may be related.
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        # A replica gets its schema by replication; `migrate` runs on the primary only.
        return db != REPLICA
