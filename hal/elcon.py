"""TC/Elcon CAN-controlled chargers as a port's power stage, through python-can.

These chargers (1.5-6.6 kW, ratings to 120 V and beyond) cover the packs no Modbus module reaches:
63 V onewheels, 84 V, 100.8 V and 126 V unicycles. The protocol, as the maker's CAN note (quoted in
public code; the "1430 ALG-CAN Protocol" sheet in Lennart-O/TCCharger-voltage-current-control) and
that project's ``TCCharger.ino`` describe it:

- 29-bit ids, 250 kbit/s (500 kbit/s on 6.6 kW units);
- the controller sends ``0x1806E5F4`` once a second: bytes 0-1 voltage limit, 2-3 current limit,
  big-endian, 0.1 V and 0.1 A per count; byte 4 control, 0 charge, 1 stop;
- the charger answers ``0x18FF50E5`` once a second: bytes 0-1 output voltage, 2-3 output current
  (same scale), byte 4 status bits: 0 hardware failure, 1 over-temperature, 2 input voltage wrong,
  3 battery disconnected or reversed, 4 communication time-out;
- without a valid command for 5 s the charger stops by itself, and starts again on the next one;
- up to four chargers share a bus at addresses 0xE5, 0xE7, 0xE8, 0xE9. The ids are J1939 ones
  (priority 6, PGN 0x06 to destination 0xE5 from source 0xF4; PGN 0xFF50 from source 0xE5), so
  charger ``a`` takes ``0x1806aaF4`` and answers ``0x18FF50aa``; that is inferred from the id
  layout, not read in a maker's document, and has not been tried on a unit.

The part has no read-back of its set points: :class:`StageStatus` carries what this driver last
commanded, and the station verifies the stage through its output (voltage at or below the limit,
current at or below the grant), against the port's own sensor. A read returns the last status
frame if it is younger than ``stale_s``, or waits at most ``timeout_s`` of the injected clock for
the next one.

The charger's 5 s silence stop protects against a station that has died. Against one that lives
but has lost track of a session (a watch task ended by a bug, a loop that no longer reads the
stage), the driver takes a lease (``lease_s``, :data:`LEASE_S` in the station): it repeats the
charge command only while the station keeps using the stage, a read or a set point at least every
``lease_s``. Once the lease lapses it sends the stop command itself, and a read reports the output
off, which the station's watch takes for a fault. While no session is live the command repeats as
"stop, 0 A", so the charger is held stopped both by the command and, were the station to die, by
its own time-out.

python-can is imported only when a bus is opened here. Frames are read without blocking
(``recv(timeout=0)``), so the event loop never waits on the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any

from hal.clock import Clock, wait_for
from hal.errors import BackendUnavailable, StageError, StageTimeout
from hal.interfaces import PowerStage, StageLimits, StageMode, StageProtection, StageStatus
from hal.stages import check_range

log = logging.getLogger(__name__)

CHARGER_ADDRESSES = (0xE5, 0xE7, 0xE8, 0xE9)
COMMAND_ID = 0x1806E5F4
STATUS_ID = 0x18FF50E5


def command_id(charger_address: int = 0xE5) -> int:
    return 0x180600F4 | (charger_address << 8)


def status_id(charger_address: int = 0xE5) -> int:
    return 0x18FF5000 | charger_address


BITRATE = 250_000
COMMAND_PERIOD_S = 1.0
CHARGER_TIMEOUT_S = 5.0
LEASE_S = 4.0
"""The station reads a live stage every 0.25 s, and a stop's longest wait (a vehicle's reply, its
retries, the ramp) is about 3.5 s: a lapse then stops the charger within 5 s, as a dead station's
silence would."""
CONTROL_CHARGE, CONTROL_STOP = 0, 1
STATUS_BITS = {
    0x01: StageProtection.OTHER,  # hardware failure
    0x02: StageProtection.OVER_TEMPERATURE,
    0x04: StageProtection.INPUT_FAULT,
    0x08: StageProtection.NO_BATTERY,
    0x10: StageProtection.LINK_TIMEOUT,
}


def step_down(value: float) -> float:
    """A limit in the protocol's 0.1 steps, never above what was asked: a grant of 1.05 A is
    1.0 A on the charger, not 1.1 A (the read-back check allows half a step of difference)."""
    return math.floor(value * 10 + 1e-6) / 10


def encode_command(voltage_v: float, current_a: float, charge: bool) -> bytes:
    volts, amps = round(voltage_v * 10), round(current_a * 10)
    control = CONTROL_CHARGE if charge else CONTROL_STOP
    return volts.to_bytes(2, "big") + amps.to_bytes(2, "big") + bytes([control, 0, 0, 0])


def decode_command(data: bytes) -> tuple[float, float, bool]:
    if len(data) < 5:
        raise ValueError(f"a command frame has 8 bytes, not {len(data)}")
    volts = int.from_bytes(data[0:2], "big") / 10
    amps = int.from_bytes(data[2:4], "big") / 10
    return volts, amps, data[4] == CONTROL_CHARGE


def encode_status(voltage_v: float, current_a: float, bits: int) -> bytes:
    volts, amps = round(max(0.0, voltage_v) * 10), round(max(0.0, current_a) * 10)
    return volts.to_bytes(2, "big") + amps.to_bytes(2, "big") + bytes([bits & 0xFF, 0, 0, 0])


def decode_status(data: bytes) -> tuple[float, float, int]:
    if len(data) < 5:
        raise ValueError(f"a status frame has 8 bytes, not {len(data)}")
    return int.from_bytes(data[0:2], "big") / 10, int.from_bytes(data[2:4], "big") / 10, data[4]


def protection_of(bits: int) -> StageProtection:
    flags = StageProtection.NONE
    for bit, flag in STATUS_BITS.items():
        if bits & bit:
            flags |= flag
    return flags


def open_bus(interface: str, channel: str, bitrate: int = BITRATE) -> Any:
    """A python-can bus: ``socketcan``/``can0`` on the Pi's MCP2515, ``virtual`` on the bench."""
    try:
        import can
    except ImportError as exc:
        raise BackendUnavailable(
            "python-can is not installed: pip install 'pev-charger[pi]'"
        ) from exc
    try:
        return can.Bus(interface=interface, channel=channel, bitrate=bitrate)
    except (OSError, can.CanError) as exc:
        raise StageError(f"cannot open CAN bus {interface}:{channel}: {exc}") from exc


class ElconStage(PowerStage):
    """A TC/Elcon charger on a CAN bus. The station owns the bus object and closes it.

    Each stage reads its bus without blocking and keeps only its charger's status frames, so each
    needs its own bus object (on SocketCAN, one socket per stage on the same ``can0``).
    """

    part = "TC/Elcon CAN charger"

    def __init__(
        self,
        bus: Any,
        clock: Clock,
        *,
        max_voltage_v: float,
        max_current_a: float,
        timeout_s: float = 1.0,
        stale_s: float = 1.5,
        charger_address: int = 0xE5,
        lease_s: float | None = None,
    ) -> None:
        if charger_address not in CHARGER_ADDRESSES:
            raise StageError(
                f"charger address 0x{charger_address:02X} is not one of "
                + ", ".join(f"0x{a:02X}" for a in CHARGER_ADDRESSES)
            )
        self.bus = bus
        self.command_id = command_id(charger_address)
        self.status_id = status_id(charger_address)
        self._clock = clock
        self._limits = StageLimits(max_voltage_v, max_current_a, 0.1, 0.1)
        self.timeout_s = timeout_s
        """How long a read waits for a fresh status frame when the last one is stale."""
        self.stale_s = stale_s
        """A status frame older than this (one period and a half) is not an answer: a silent
        charger is caught within ``stale_s + timeout_s`` of its last frame."""
        self.voltage_v = 0.0
        self.current_a = 0.0
        self.charging = False
        self._status: tuple[float, float, int] | None = None
        self._status_at = -1e9
        self._sender: asyncio.Task[None] | None = None
        self._send_error: StageError | None = None
        self.frames_sent = 0
        self.lease_s = lease_s
        self._used_at = clock.monotonic()
        self.lapsed = False
        """The lease lapsed while the output was on: the driver stopped the charger itself."""

    @property
    def limits(self) -> StageLimits:
        return self._limits

    def describe(self) -> dict[str, object]:
        return {
            "part": self.part,
            "link": f"CAN {getattr(self.bus, 'channel_info', self.bus)}",
            "command_id": f"0x{self.command_id:08X}",
            "status_id": f"0x{self.status_id:08X}",
            "max_voltage_v": self._limits.max_voltage_v,
            "max_current_a": self._limits.max_current_a,
        }

    async def open(self) -> None:
        """Start the once-a-second command (stopped, 0 V, 0 A) and wait for the first status."""
        self.charging = False
        self._send()
        self._sender = asyncio.create_task(self._keep_alive(), name="elcon-keep-alive")
        try:
            await self._fresh_status(COMMAND_PERIOD_S + self.timeout_s)  # status once a second
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        self.charging = False
        with contextlib.suppress(Exception):  # best effort: the charger stops within 5 s anyway
            self._send()

    def _use(self) -> None:
        self._used_at = self._clock.monotonic()

    async def _keep_alive(self) -> None:
        """The charger stops after 5 s without a command; a failed send is reported by read()."""
        while True:
            await self._clock.sleep(COMMAND_PERIOD_S)
            idle = self._clock.monotonic() - self._used_at
            if self.charging and self.lease_s is not None and idle > self.lease_s:
                self.charging = False  # nobody has looked at this session: stop it
                self.lapsed = True
                log.warning("%s: not used for %.1f s: charger stopped", self.part, idle)
            try:
                self._send()
            except StageError as exc:
                self._send_error = exc

    def _send(self) -> None:
        import can

        frame = can.Message(
            arbitration_id=self.command_id,
            is_extended_id=True,
            data=encode_command(self.voltage_v, self.current_a, self.charging),
        )
        try:
            self.bus.send(frame, timeout=0.05)
        except (OSError, can.CanError) as exc:
            raise StageError(f"CAN send failed: {exc}") from exc
        self.frames_sent += 1
        self._send_error = None

    def _drain(self) -> None:
        while True:
            frame = self.bus.recv(timeout=0)
            if frame is None:
                return
            if frame.arbitration_id == self.status_id and frame.is_extended_id:
                with contextlib.suppress(ValueError):  # a short frame is ignored, not trusted
                    self._status = decode_status(bytes(frame.data))
                    self._status_at = self._clock.monotonic()

    async def _fresh_status(self, timeout_s: float | None = None) -> tuple[float, float, int]:
        timeout = self.timeout_s if timeout_s is None else timeout_s

        async def wait() -> tuple[float, float, int]:
            while True:
                self._drain()
                if self._status is not None and (
                    self._clock.monotonic() - self._status_at <= self.stale_s
                ):
                    return self._status
                await self._clock.sleep(0.05)

        try:
            return await wait_for(self._clock, wait(), timeout)
        except TimeoutError as exc:
            raise StageTimeout(
                f"no status frame (0x{self.status_id:08X}) from the charger within {timeout:g} s"
            ) from exc

    async def set_voltage(self, voltage_v: float) -> None:
        check_range(self._limits, voltage_v, None)
        self._use()
        self.voltage_v = step_down(voltage_v)
        self._send()

    async def set_current(self, current_a: float) -> None:
        check_range(self._limits, None, current_a)
        self._use()
        self.current_a = step_down(current_a)
        self._send()

    async def set_output(self, on: bool) -> None:
        self._use()
        self.charging = on
        self.lapsed = False
        self._send()

    async def read(self) -> StageStatus:
        self._use()
        if self._send_error is not None:
            raise self._send_error
        volts, amps, bits = await self._fresh_status()
        protection = protection_of(bits)
        on = self.charging and protection == StageProtection.NONE
        at_limit = volts >= self.voltage_v - 0.2  # two counts of the 0.1 V resolution
        return StageStatus(
            voltage_set_v=self.voltage_v,
            current_set_a=self.current_a,
            output_on=on,
            output_voltage_v=volts,
            output_current_a=amps,
            mode=StageMode.CONSTANT_VOLTAGE if at_limit else StageMode.CONSTANT_CURRENT,
            protection=protection,
            timestamp=self._status_at,
        )
