"""Full cycle collections, which hold the interpreter long enough to starve the safety thread,
run only while no port is live, unless the heap has grown far enough to call it a leak."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from firmware.collector import NEVER, FullCollections
from hal.clock import SimClock


class Heap:
    """The collector's view of the long-lived heap, set by the test."""

    def __init__(self, objects: int) -> None:
        self.objects = objects
        self.collections = 0

    def collect(self) -> None:
        self.collections += 1
        self.objects = self.objects // 2


@pytest.fixture
def gc_restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def collections(heap: Heap, idle: list[bool]) -> FullCollections:
    return FullCollections(
        SimClock(), lambda: idle[0], long_lived=lambda: heap.objects, collect=heap.collect
    )


def test_taking_over_stops_the_automatic_full_passes_and_keeps_the_young_ones(
    gc_restored: None,
) -> None:
    young, middle, _ = gc.get_threshold()
    heap = Heap(1000)
    collections(heap, [True]).take_over()
    assert gc.get_threshold() == (young, middle, NEVER)
    assert gc.get_freeze_count() > 0  # what existed at start is never scanned again


def test_a_full_pass_waits_until_no_port_is_live() -> None:
    heap, idle = Heap(100_000), [False]
    full = collections(heap, idle)
    full.baseline = 100_000
    heap.objects = 200_000  # grown, but ports are live and it is no leak yet
    full.check()
    assert heap.collections == 0
    idle[0] = True
    full.check()
    assert heap.collections == 1 and full.forced == 0
    assert full.baseline == heap.objects  # measured again after the pass
    full.check()  # idle, but the heap has not grown since: nothing to do
    assert heap.collections == 1


def test_a_heap_that_keeps_growing_on_a_busy_station_is_collected_anyway(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heap, idle = Heap(100_000), [False]
    full = collections(heap, idle)
    full.baseline = 100_000
    heap.objects = 1_100_001  # past baseline + a million objects, four times over
    full.check()
    assert heap.collections == 1 and full.forced == 1
    assert "ports are live" in caplog.text


async def test_the_check_runs_on_the_injected_clock() -> None:
    clock = SimClock()
    heap, idle = Heap(100_000), [True]
    full = FullCollections(
        clock, lambda: idle[0], long_lived=lambda: heap.objects, collect=heap.collect
    )
    full.baseline = 10_000
    task = asyncio.create_task(full.run())
    try:
        await clock.advance(59.0)
        assert heap.collections == 0
        await clock.advance(2.0)
        assert heap.collections == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
