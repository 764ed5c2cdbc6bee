"""The kit's rules over the whole tape, on tapes written line by line (no device needed)."""

from __future__ import annotations

from firmware.pevlink import SUPPORTED_VERSIONS, Boot, Hello, HelloReply, Message, encode
from hal.clock import SimClock
from host.conformance.report import Results
from host.conformance.tape_checks import one_outstanding
from host.conformance.wire import Wire
from host.console.render import Record

HELLO = Hello(SUPPORTED_VERSIONS, "ebike", "Bosch class", "36 V e-bike")


class _NoLine:
    async def read(self, timeout: float) -> bytes:
        return b""

    async def write(self, data: bytes) -> None:
        pass


async def tape(*lines: tuple[float, str, Message, int]) -> Wire:
    """A tape with these lines at these times (seconds since the run began)."""
    clock = SimClock()
    wire = Wire(_NoLine(), clock)
    for t, direction, message, seq in lines:
        await clock.advance(t - wire.now())
        wire.record(Record(t, direction, encode(message, seq)))
    return wire


def verdict(wire: Wire) -> list[str]:
    results = Results("vehicle")
    one_outstanding(wire, results, "VH-LINK-06", slack=0.5)
    return results.failed_ids()


async def test_a_retry_that_crosses_the_stations_boot_is_not_a_second_request() -> None:
    """The vehicle's retry of HELLO was on the line when the kit's BOOT arrived; it then sent its
    own BOOT and a new HELLO: nothing was outstanding twice."""
    wire = await tape(
        (4.0, "rx", HELLO, 0x09),
        (4.5, "tx", Boot("station", SUPPORTED_VERSIONS), 0x05),
        (4.504, "rx", HELLO, 0x09),
        (4.504, "rx", Boot("vehicle", SUPPORTED_VERSIONS), 0x0B),
        (4.504, "rx", HELLO, 0x0C),
        (4.504, "tx", HelloReply(1, "pev-conformance", 1), 0x0C),
    )
    assert verdict(wire) == []


async def test_a_second_request_while_the_first_is_outstanding_still_fails() -> None:
    wire = await tape(
        (4.0, "rx", HELLO, 0x09),
        (4.2, "rx", HELLO, 0x0C),
    )
    assert verdict(wire) == ["VH-LINK-06"]
