"""Reading one step ahead on a background thread while the caller works."""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator
from typing import Any

from django.db import connections

_DONE = object()


def prefetched[T](batches: Iterator[T], *, depth: int = 1) -> Iterator[T]:
    """`batches`, read one step ahead on a background thread while the caller works.

    The thread has its own database connection (Django connections are per thread) and
    closes it when done; psycopg releases the GIL while it waits for PostgreSQL, so reading
    the next batch overlaps building and encoding this one. At most `depth` batches wait,
    which keeps memory flat. Errors are raised in the caller; closing the generator early
    stops the thread.

    Only for reads outside a transaction: the other connection would not see its writes.
    """
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for batch in batches:
                if not put((batch, None)):
                    return
            put((_DONE, None))
        except BaseException as error:  # re-raised in the caller's thread
            put((_DONE, error))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
            connections.close_all()

    # The thread reads in the caller's context: its database routing (replica reads) too.
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(run,), name="export-reader", daemon=True)
    thread.start()
    try:
        while True:
            batch, error = slots.get()
            if error is not None:
                raise error
            if batch is _DONE:
                return
            yield batch
    finally:
        stop.set()
        thread.join()
