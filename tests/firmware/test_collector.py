"""Full cycle collections, which hold the interpreter long enough to starve the safety thread,
run when their pause fits or no port is live, and otherwise only past a leak bound."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from firmware.collector import LEAK_BLOCKS, NEVER, FullCollections
from hal.clock import SimClock

SECONDS_PER_BLOCK = 1e-7
"""What a full pass costs here per allocated block, in the tests' heap: 10 ms per 100,000."""


class Heap:
    """The collector's view of the heap, set by the test: allocated blocks, and the CPU clock
    that a full pass moves by what scanning them costs."""

    def __init__(self, blocks: int) -> None:
        self.blocks = blocks
        self.cpu = 0.0
        self.passes = 0
        self.garbage = 0

    def collect(self) -> None:
        self.cpu += self.blocks * SECONDS_PER_BLOCK
        self.blocks -= self.garbage
        self.garbage = 0
        self.passes += 1


@pytest.fixture
def gc_restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def collector(heap: Heap, idle: list[bool], budget_s: float = 0.025) -> FullCollections:
    full = FullCollections(
        SimClock(),
        lambda: idle[0],
        lambda: budget_s,
        blocks=lambda: heap.blocks,
        collect=heap.collect,
        cpu=lambda: heap.cpu,
    )
    full._run()  # as take_over does: one pass measures the cost per block
    return full


def grow(heap: Heap, blocks: int) -> None:
    heap.blocks += blocks
    heap.garbage += blocks


def test_taking_over_stops_the_automatic_full_passes_and_keeps_the_young_ones(
    gc_restored: None,
) -> None:
    young, middle, _ = gc.get_threshold()
    full = FullCollections(SimClock(), lambda: True, lambda: 0.025)
    full.take_over()
    assert gc.get_threshold() == (young, middle, NEVER)
    assert gc.get_freeze_count() > 0  # what existed at start is never scanned again
    assert full.runs == 1 and full.seconds_per_block > 0


def test_a_small_heap_is_collected_while_ports_are_live() -> None:
    """A station with a few viewers: a full pass takes a few milliseconds, well inside the
    budget, and runs as CPython would have run it."""
    heap, idle = Heap(100_000), [False]
    full = collector(heap, idle)
    grow(heap, 20_000)
    full.check()
    assert heap.passes == 1  # not grown by a quarter yet
    grow(heap, 20_000)
    full.check()
    assert heap.passes == 2 and heap.blocks == 100_000 and full.forced == 0


def test_a_large_heap_waits_until_no_port_is_live() -> None:
    """A thousand viewers: the pause (about 80 ms) would outlast the budget."""
    heap, idle = Heap(800_000), [False]
    full = collector(heap, idle)
    grow(heap, 400_000)
    assert full.estimated_pause_s() > 0.025
    full.check()
    assert heap.passes == 1
    idle[0] = True
    full.check()
    assert heap.passes == 2 and full.forced == 0
    full.check()  # idle, but nothing has grown since: nothing to do
    assert heap.passes == 2


def test_a_heap_that_keeps_growing_on_a_busy_station_is_collected_anyway(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heap, idle = Heap(800_000), [False]
    full = collector(heap, idle)
    grow(heap, LEAK_BLOCKS)
    full.check()
    grow(heap, 1)
    full.check()
    assert heap.passes == 2 and full.forced == 1
    assert "while ports are live" in caplog.text


async def test_the_check_runs_on_the_injected_clock() -> None:
    clock = SimClock()
    heap, idle = Heap(100_000), [True]
    full = FullCollections(
        clock,
        lambda: idle[0],
        lambda: 0.025,
        blocks=lambda: heap.blocks,
        collect=heap.collect,
        cpu=lambda: heap.cpu,
        check_period_s=10.0,
    )
    full._run()
    grow(heap, 50_000)
    task = asyncio.create_task(full.run())
    try:
        await clock.advance(9.0)
        assert heap.passes == 1
        await clock.advance(2.0)
        assert heap.passes == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
