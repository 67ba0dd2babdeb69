"""The web server's worker: gunicorn's threaded worker, taking new connections only while
it has a free thread.

gunicorn's workers share one listening socket, and the worker that happens to be awake
takes whatever arrives: twenty raters connecting at once may all land on one worker, whose
eight threads then queue them behind one interpreter lock while the other workers idle
(seen in `bench/concurrency.py`: 20 connections on one of three workers, a quarter less
throughput). This worker stops accepting once as many of its connections are busy (a
request read or being answered) as it has threads, and starts again when one is done;
connections then go to the workers with free threads. Idle keep-alive connections don't
count, so raters between tasks never keep a worker from taking new ones.
"""

from __future__ import annotations

from typing import Any

from gunicorn.workers.gthread import ThreadWorker


class BalancedThreadWorker(ThreadWorker):  # type: ignore[misc]
    def busy_connections(self) -> int:
        """Open connections less those idle between requests."""
        idle = len(self.keepalived_conns) + len(getattr(self, "pending_conns", ()))
        return int(self.nr_conns) - idle

    def has_free_thread(self) -> bool:
        return self.busy_connections() < int(self.cfg.threads)

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and self.has_free_thread())

    def accept(self, listener: Any) -> None:
        super().accept(listener)
        if not self.has_free_thread():
            super().set_accept_enabled(False)
