"""The C allocator's and Python's cycle collector's settings while a large computation runs.

glibc's malloc hands an allocation of more than its mmap threshold (128 KB at first, rising
with what is freed, at most 32 MB) its own pages and gives them back to the kernel when
it is freed, and trims freed memory at the top of its heap past its trim threshold. A run
that allocates arrays of a few MB to a few tens of MB part after part then pays, for every
array, the kernel's zeroing of fresh pages and the system calls: several seconds of system
CPU a million rankings. ``large_buffers_kept`` raises both thresholds for as long as such a
computation runs, so freed arrays stay in the heap for the next part's, and returns the
heap's free memory to the kernel when the last one ends. Elsewhere than on glibc it does
nothing.

Setting a threshold turns glibc's rising one off for the rest of the process, so what comes
back after the computation is not the starting 128 KB (every array past it would then get
fresh pages for as long as the process lives: an EM pass over 58M labels ran 4.4 times
slower after a run than before it, in the same process) but what the rising threshold
reaches in a process that frees large arrays: 32 MB, with the trim threshold twice it, as
glibc keeps them.

Python's cycle collector runs a young collection every 700 new container objects; parsing
an import makes tens of such objects a record (dicts, lists, records), none in a cycle, and
the collections took half the client's CPU of an import (20k records parsed and validated:
0.81 s, 0.43 s with collections every 100,000). ``cycles_collected_rarely`` raises that
threshold while an import runs: cycles are still collected, reference counting frees the
rest as usual, so memory stays flat.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
KEPT_MMAP_THRESHOLD = 32 * 1024 * 1024
"""glibc's largest mmap threshold on 64-bit: arrays up to this size come from the heap."""
KEPT_TRIM_THRESHOLD = 1024 * 1024 * 1024
"""Free memory the heap keeps at its top before trimming, while a computation runs."""
AFTER_MMAP_THRESHOLD = 32 * 1024 * 1024
"""The mmap threshold once the computation ends: glibc's rising threshold at its top."""
AFTER_TRIM_THRESHOLD = 2 * AFTER_MMAP_THRESHOLD
"""The trim threshold once the computation ends: twice the mmap threshold, as glibc sets it
when the threshold rises."""

_lock = threading.Lock()
_holders = 0


@cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def _set(libc: ctypes.CDLL, *, mmap_threshold: int, trim_threshold: int) -> bool:
    """True when glibc took both settings (``mallopt`` answers 1 on success)."""
    took_mmap = libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(mmap_threshold))
    took_trim = libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(trim_threshold))
    return bool(took_mmap == 1 and took_trim == 1)


@contextmanager
def large_buffers_kept() -> Iterator[bool]:
    """Keep freed large buffers in the heap while the block runs (see the module); yields
    whether the allocator took the settings. Nested and concurrent uses share them: the
    settings after (``AFTER_MMAP_THRESHOLD``, ``AFTER_TRIM_THRESHOLD``) come in, and the
    heap is trimmed, when the last one ends."""
    global _holders
    libc = _glibc()
    with _lock:
        _holders += 1
        took = libc is not None and _set(
            libc, mmap_threshold=KEPT_MMAP_THRESHOLD, trim_threshold=KEPT_TRIM_THRESHOLD
        )
    try:
        yield took
    finally:
        with _lock:
            _holders -= 1
            if libc is not None and _holders == 0:
                _set(
                    libc,
                    mmap_threshold=AFTER_MMAP_THRESHOLD,
                    trim_threshold=AFTER_TRIM_THRESHOLD,
                )
                libc.malloc_trim(ctypes.c_size_t(0))


RARE_COLLECTION_THRESHOLD = 100_000
"""New container objects between young collections while an import runs (Python's: 700)."""
_collector_lock = threading.Lock()
_collector_holders = 0
_collector_thresholds: tuple[int, ...] = ()


@contextmanager
def cycles_collected_rarely() -> Iterator[None]:
    """Collect cycles rarely while the block runs (see the module). Nested and concurrent
    uses (imports in two threads of a web worker) share the setting: the thresholds before
    the first come back when the last ends."""
    global _collector_holders, _collector_thresholds
    with _collector_lock:
        if _collector_holders == 0:
            _collector_thresholds = gc.get_threshold()
            gc.set_threshold(RARE_COLLECTION_THRESHOLD, *_collector_thresholds[1:])
        _collector_holders += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_holders -= 1
            if _collector_holders == 0:
                gc.set_threshold(*_collector_thresholds)
