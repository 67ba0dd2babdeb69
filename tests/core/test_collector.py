"""``core.memory.cycles_collected_rarely``: while it holds, young collections come after
many more new objects, yet cycles are still collected; the thresholds before come back when
the last of overlapping uses ends."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

from core import memory


class Node:
    link: Node | None = None


@pytest.fixture(autouse=True)
def collector_on():
    was_enabled, thresholds = gc.isenabled(), gc.get_threshold()
    gc.enable()
    yield
    gc.set_threshold(*thresholds)
    if not was_enabled:
        gc.disable()


def test_the_threshold_is_raised_while_it_holds_and_put_back_after():
    before = gc.get_threshold()
    with memory.cycles_collected_rarely():
        assert gc.get_threshold() == (memory.RARE_COLLECTION_THRESHOLD, *before[1:])
    assert gc.get_threshold() == before


def test_a_cycle_is_still_collected_while_it_holds():
    with memory.cycles_collected_rarely():
        node = Node()
        node.link = node
        alive = weakref.ref(node)
        del node
        # New containers past the threshold bring a young collection, and the cycle with it.
        kept: list[list[int]] = [[] for _ in range(2 * memory.RARE_COLLECTION_THRESHOLD)]
        assert alive() is None
        assert len(kept) == 2 * memory.RARE_COLLECTION_THRESHOLD


def test_overlapping_uses_in_two_threads_put_back_the_first_thresholds():
    before = gc.get_threshold()
    entered, first_left = threading.Event(), threading.Event()
    seen_after_first_left: list[tuple[int, ...]] = []

    def second() -> None:
        with memory.cycles_collected_rarely():
            entered.set()
            first_left.wait(timeout=10)
            seen_after_first_left.append(gc.get_threshold())

    thread = threading.Thread(target=second)
    with memory.cycles_collected_rarely():
        thread.start()
        assert entered.wait(timeout=10)
    first_left.set()
    thread.join(timeout=10)
    assert seen_after_first_left == [(memory.RARE_COLLECTION_THRESHOLD, *before[1:])]
    assert gc.get_threshold() == before
