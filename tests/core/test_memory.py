"""``core.memory.large_buffers_kept``: while it holds, a freed large buffer stays in the
heap for the next one; after it, the heap is trimmed and the settings are glibc's risen
ones (buffers up to 32 MB from the heap, larger ones on their own pages), not its starting
128 KB, which would give every later array of the process fresh pages."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import threading

import pytest

from core import memory

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the allocator settings are glibc's"
)

BUFFER_BYTES = 20 * 1024 * 1024  # above glibc's starting mmap threshold, below the kept one
LARGER_BYTES = 48 * 1024 * 1024  # above the threshold after


class MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def heap() -> MallInfo2:
    """The main arena's figures (this test's thread allocates from it)."""
    name = ctypes.util.find_library("c")
    assert name is not None
    libc = ctypes.CDLL(name)
    libc.mallinfo2.restype = MallInfo2
    info: MallInfo2 = libc.mallinfo2()
    return info


def allocate_and_free(size: int = BUFFER_BYTES) -> tuple[int, int]:
    """(bytes mmapped while a large buffer is held, free heap bytes once it is freed)."""
    buffer = ctypes.create_string_buffer(size)
    mmapped = heap().hblkhd
    del buffer
    return mmapped, heap().fordblks


def assert_settings_after() -> None:
    """A buffer below 32 MB comes from the heap; a larger one gets its own pages."""
    mmapped_before = heap().hblkhd
    mmapped, _ = allocate_and_free()
    assert mmapped - mmapped_before < BUFFER_BYTES
    mmapped_before = heap().hblkhd
    mmapped, _ = allocate_and_free(LARGER_BYTES)
    assert mmapped - mmapped_before >= LARGER_BYTES


def test_a_freed_large_buffer_stays_in_the_heap_while_kept_and_the_heap_is_trimmed_after():
    assert threading.current_thread() is threading.main_thread()
    mmapped_before = heap().hblkhd
    with memory.large_buffers_kept() as took:
        assert took
        mmapped, free = allocate_and_free()
        assert mmapped - mmapped_before < BUFFER_BYTES  # from the heap, not its own pages
        assert free >= BUFFER_BYTES  # kept for the next buffer
    # The heap was trimmed, and the settings after hold.
    assert heap().fordblks < free - BUFFER_BYTES // 2
    assert_settings_after()


def test_nested_uses_keep_the_settings_until_the_last_one_ends():
    with memory.large_buffers_kept():
        with memory.large_buffers_kept():
            pass
        mmapped_before = heap().hblkhd
        mmapped, free = allocate_and_free()
        assert mmapped - mmapped_before < BUFFER_BYTES
        assert free >= BUFFER_BYTES
    # The last one ended: the settings after hold.
    assert_settings_after()
