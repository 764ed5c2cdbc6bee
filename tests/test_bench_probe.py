"""bench/probe.py's timed bus transfers: sampled with their weight, a transfer inside another
counted once."""

from __future__ import annotations

import collections

from bench.probe import TRANSFER_SAMPLE, TransferTimer
from hal.sim.i2c import SimI2C
from hal.sim.ina228 import Ina228Model

NAMES = ("writeto", "readfrom_into", "writeto_then_readfrom")


class TimedBus(SimI2C):
    """The simulated bus with its transfers wrapped as probe.main wraps SimI2C's."""


def timed_bus(log: collections.deque[tuple[float, float]]) -> TimedBus:
    timer = TransferTimer(log)
    for name in NAMES:
        setattr(TimedBus, name, timer.wrap(getattr(SimI2C, name)))
    bus = TimedBus()
    bus.add_device(0x40, Ina228Model(0.015))
    bus.add_device(0x41, Ina228Model(0.015))
    return bus


def test_one_transfer_in_the_sample_is_timed_with_its_weight() -> None:
    log: collections.deque[tuple[float, float]] = collections.deque()
    bus = timed_bus(log)
    for _ in range(3 * TRANSFER_SAMPLE):
        bus.writeto_then_readfrom(0x40, b"\x05", bytearray(3))
    assert len(log) == 3
    assert all(spent >= 0 for _, spent in log)


def test_a_write_then_read_that_falls_back_to_its_halves_is_logged_once() -> None:
    log: collections.deque[tuple[float, float]] = collections.deque()
    bus = timed_bus(log)
    bus.fail_next[0x41] = 10_000  # a failing sensor elsewhere on the bus: every read halves
    for _ in range(TRANSFER_SAMPLE):
        bus.writeto_then_readfrom(0x40, b"\x05", bytearray(3))
    assert len(log) == 1  # each outer transfer counts as one, its halves inside it
