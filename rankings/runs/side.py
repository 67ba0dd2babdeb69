"""A run's database work beside its computing (``parts``): one thread of its own, with its
own connection, reads the part after the one being computed (and keeps it for pass two)
and stores the part before. The database's CPU and the run's then overlap instead of
taking turns."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from django.db import connection, connections

from core import db


class SideThread[Block]:
    """Reads (``read``, ``prefetch``: a part's block by its index, whatever ``read_part``
    does with it besides) and writes (``store``) on the side thread. One write waits at a
    time, so a run holds at most one more block or one more part's rows than without it.

    Only on PostgreSQL outside a transaction (``when_safe``): other connections cannot see
    a transaction's rows, and SQLite takes one writer at a time.
    """

    def __init__(self, read_part: Callable[[int], Block]) -> None:
        self.read_part = read_part
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agreement-side")
        self.reads: dict[int, Future[Block]] = {}
        self.write: Future[int] | None = None

    @classmethod
    def when_safe(cls, read_part: Callable[[int], Block], n_parts: int) -> SideThread[Block] | None:
        if not db.is_postgresql() or connection.in_atomic_block or n_parts < 2:
            return None
        return cls(read_part)

    def read(self, index: int) -> Future[Block]:
        """The part's block: read ahead already, or read now."""
        self.prefetch(index)
        return self.reads.pop(index)

    def prefetch(self, index: int) -> None:
        """Start reading the part's block."""
        if index not in self.reads:
            self.reads[index] = self.pool.submit(self.read_part, index)

    def store(self, write: Callable[[], int]) -> None:
        """Run ``write`` once the write before it is done (its error raised here)."""
        self.drain()
        self.write = self.pool.submit(write)

    def drain(self) -> None:
        write, self.write = self.write, None
        if write is not None:
            write.result()

    def close(self) -> None:
        """Wait for what is under way (its errors were raised by ``drain`` or do not
        matter: the run is failing), then close the thread's connections."""
        under_way: list[Future[Any]] = [*self.reads.values()]
        if self.write is not None:
            under_way.append(self.write)
        wait(under_way)
        self.pool.submit(connections.close_all).result()
        self.pool.shutdown()
