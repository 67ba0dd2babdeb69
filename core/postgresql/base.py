"""Django's PostgreSQL backend, whose connection check costs no round trip when the
connection is healthy.

With CONN_HEALTH_CHECKS Django runs `SELECT 1` before the first statement of every request
that reuses a persistent connection: one round trip more for every API call, on the web
server's CPU and the database's. Here, when a request's first statement is a read outside a
transaction (an API call's token lookup, a page's session), the read is the check: if the
server has ended the connection (a restart, a failover, `pg_terminate_backend`, an idle
timeout), the connection is opened again and the read run again, which a read allows. Any
other first statement (a write, `executemany`, a server-side cursor) gets Django's
`SELECT 1` before it, as does entering a transaction.
"""

from __future__ import annotations

from typing import Any

from django.db import utils
from django.db.backends.postgresql import base
from django.db.backends.utils import CursorWrapper

# The server ended the session (57P: admin or crash shutdown, cannot connect now) or the
# connection failed (08); a statement cancelled (57014), a deadlock or a constraint is not
# a lost connection and is never run again.
LOST_CONNECTION_STATES = ("57P", "08")


class DatabaseWrapper(base.DatabaseWrapper):
    # Django's own (set by `connect`, reset by `close_if_unusable_or_obsolete`); the type
    # stubs don't name them.
    health_check_enabled: bool
    health_check_done: bool

    def _cursor(self, name: str | None = None) -> Any:
        if name is None and self.check_pending():
            # The cursor's first statement checks the connection (`FirstStatementChecks`).
            self.ensure_connection()
            with self.wrap_database_errors:
                return self._prepare_cursor(self.create_cursor(name))  # type: ignore[attr-defined]
        return super()._cursor(name)  # type: ignore[misc]

    def check_pending(self) -> bool:
        """Whether the connection is reused by a request and not yet known to work."""
        return (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and not self.pool
        )

    def connection_lost(self, error: Exception) -> bool:
        """Whether `error` came from a connection the server ended or that failed."""
        if self.connection is None or self.connection.closed:
            return True
        state = getattr(error.__cause__, "sqlstate", None) or ""
        return state.startswith(LOST_CONNECTION_STATES)

    def reopen(self) -> None:
        """A new connection in place of one that is lost (outside any transaction)."""
        self.close()
        self.ensure_connection()

    def make_cursor(self, cursor: Any) -> Any:
        return CheckingCursorWrapper(cursor, self)

    def make_debug_cursor(self, cursor: Any) -> Any:
        return CheckingCursorDebugWrapper(cursor, self)


def is_read(sql: Any) -> bool:
    """A plain SELECT: running it a second time changes nothing."""
    return isinstance(sql, str) and sql.lstrip()[:6].upper() == "SELECT"


class FirstStatementChecks:
    """A cursor whose first statement on a connection not yet checked is the check."""

    db: DatabaseWrapper
    cursor: Any

    def _execute(self, sql: Any, params: Any, *wrapper_args: Any) -> Any:
        if not self.db.check_pending():
            return super()._execute(sql, params, *wrapper_args)  # type: ignore[misc]
        if not is_read(sql):
            self._check_the_django_way()
            return super()._execute(sql, params, *wrapper_args)  # type: ignore[misc]
        try:
            result = super()._execute(sql, params, *wrapper_args)  # type: ignore[misc]
        except (utils.OperationalError, utils.InterfaceError) as error:
            if not self.db.connection_lost(error):
                raise
            self._use_a_new_connection()
            result = super()._execute(sql, params, *wrapper_args)  # type: ignore[misc]
        self.db.health_check_done = True
        return result

    def _executemany(self, sql: Any, param_list: Any, *wrapper_args: Any) -> Any:
        if self.db.check_pending():
            self._check_the_django_way()
        return super()._executemany(sql, param_list, *wrapper_args)  # type: ignore[misc]

    def _check_the_django_way(self) -> None:
        self.db.close_if_health_check_failed()
        if self.db.connection is None:
            self._use_a_new_connection()

    def _use_a_new_connection(self) -> None:
        self.db.reopen()
        self.cursor.close()
        self.cursor = self.db.create_cursor()


class CheckingCursorWrapper(FirstStatementChecks, CursorWrapper):
    pass


class CheckingCursorDebugWrapper(FirstStatementChecks, base.CursorDebugWrapper):
    pass
