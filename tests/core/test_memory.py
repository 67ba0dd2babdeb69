"""``core.memory.large_buffers_kept``: while it holds, a freed large buffer stays in the
heap for the next one; after it, glibc's defaults are back and the heap is trimmed."""

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


def allocate_and_free() -> tuple[int, int]:
    """(bytes mmapped while a large buffer is held, free heap bytes once it is freed)."""
    buffer = ctypes.create_string_buffer(BUFFER_BYTES)
    mmapped = heap().hblkhd
    del buffer
    return mmapped, heap().fordblks


def test_a_freed_large_buffer_stays_in_the_heap_only_while_kept():
    assert threading.current_thread() is threading.main_thread()
    mmapped_before = heap().hblkhd
    with memory.large_buffers_kept() as took:
        assert took
        mmapped, free = allocate_and_free()
        assert mmapped - mmapped_before < BUFFER_BYTES  # from the heap, not its own pages
        assert free >= BUFFER_BYTES  # kept for the next buffer
    # The defaults are back: the heap was trimmed, and a large buffer gets its own pages.
    assert heap().fordblks < free - BUFFER_BYTES // 2
    mmapped, _ = allocate_and_free()
    assert mmapped - heap().hblkhd >= BUFFER_BYTES


def test_nested_uses_keep_the_settings_until_the_last_one_ends():
    with memory.large_buffers_kept():
        with memory.large_buffers_kept():
            pass
        mmapped_before = heap().hblkhd
        mmapped, free = allocate_and_free()
        assert mmapped - mmapped_before < BUFFER_BYTES
        assert free >= BUFFER_BYTES
    # The last one ended: a large buffer gets its own pages again.
    mmapped, _ = allocate_and_free()
    assert mmapped - heap().hblkhd >= BUFFER_BYTES
