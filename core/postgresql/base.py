"""Django's PostgreSQL backend, with a health check that costs no round trip.

With CONN_HEALTH_CHECKS Django runs `SELECT 1` before the first query of every request
that reuses a connection: one more round trip for each API call, on the client's CPU and
the server's. An idle connection receives nothing unless the server is ending it (a
restart, `pg_terminate_backend`, an idle timeout: an error message, then the close) or
has a notice or notification for it. So a connection whose socket has nothing to read is
usable as it stands, and only one with something waiting gets Django's `SELECT 1`, which
reads what came and decides as before. A peer that vanished without a word (a cable
pulled) looks alive to both checks until TCP gives up."""

from __future__ import annotations

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        if self.connection is None or self.connection.closed:
            return False
        if not socket_has_data(self.connection.fileno()):
            return True
        return bool(super().is_usable())


def socket_has_data(fd: int) -> bool:
    """Whether something waits to be read on `fd`, or it was closed or failed, now."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))
