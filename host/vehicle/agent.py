"""The vehicle's side of PEV Link: a simulated vehicle speaking the protocol over a serial line.

The same agent runs in-process on the bench (over the port's pseudo-terminal) and standalone as
``pev-vehicle`` against any station on a real serial port. It uses the shared codec and link
endpoint, so it is held to exactly the rules the station is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from firmware.pevlink import (
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    Battery,
    Boot,
    ChargeRequest,
    ChargeRequestReply,
    Fault,
    Grant,
    GrantReply,
    Hello,
    Message,
    Power,
    PowerReply,
    StationState,
    Stop,
    StopReply,
    Summary,
    Telemetry,
)
from firmware.pevlink.errors import ErrorCode, NakError, PeerRebooted, PevLinkError, ProtocolError
from firmware.pevlink.link import ByteTransport, LineObserver, Link
from firmware.pevlink.timers import T_LINK, T_TEL_PERIOD
from firmware.pevlink.vocabulary import BmsFlag
from hal.clock import Clock
from host.vehicle.faults import FaultKind
from host.vehicle.model import SimVehicle

log = logging.getLogger(__name__)

_FLAG_NAMES = {flag.name: flag for flag in BmsFlag if flag.name}


_WIRE_BITS: dict[type, tuple[tuple[int, int], ...]] = {}
"""For each type of model flags: (the model's bit, the protocol's bit) of each flag both name."""


def wire_flags(model_flags: Any) -> int:
    """The model's BMS flags, mapped by name onto the protocol's bit table."""
    kind = type(model_flags)
    table = _WIRE_BITS.get(kind)
    if table is None:
        pairs = ((getattr(kind, name, None), int(flag)) for name, flag in _FLAG_NAMES.items())
        table = _WIRE_BITS[kind] = tuple((int(m), bit) for m, bit in pairs if m is not None)
    bits = int(model_flags)
    out = 0
    for member, bit in table:
        if bits & member:
            out |= bit
    return out


class VehicleAgent:
    """Runs the handshake, answers the station, reports telemetry, and stops when full."""

    def __init__(
        self,
        vehicle: SimVehicle,
        transport: ByteTransport,
        clock: Clock,
        *,
        serial: str = "SIM-0001",
        seed: int = 0,
        own_physics: bool = False,
        physics_dt_s: float = 0.1,
        observer: LineObserver | None = None,
    ) -> None:
        self.vehicle = vehicle
        self.clock = clock
        self.serial = serial
        self._random = random.Random(seed)
        self._own_physics = own_physics
        self._physics_dt = physics_dt_s
        self.link = Link(
            transport,
            clock,
            on_request=self._on_request,
            on_notice=self._on_notice,
            observer=observer,
            name=f"vehicle {vehicle.spec.id}",
        )
        self.power_on = False
        self.grant_a = 0.0
        self.station_state: str | None = None
        self.station_text: str | None = None
        self.summary: Summary | None = None
        self.refused: str | None = None
        self.last_fault_sent: str | None = None
        self.stop_sent = False
        self.garbage = False
        self._restart = asyncio.Event()
        self._last_tel: Telemetry | None = None
        self._last_tel_values: tuple[float | int, ...] = ()
        self.on_event: Callable[[str], None] | None = None

    # --- faults -----------------------------------------------------------------------------------

    def inject(self, kind: FaultKind) -> None:
        if kind is FaultKind.SILENT:
            self.link.muted = True
        elif kind is FaultKind.GARBAGE:
            self.garbage = True
        elif kind is FaultKind.UNPLUG:
            self.link.muted = True
            self.power_on = False
            self.vehicle.set_grant(0.0)
        else:
            self.vehicle.inject(kind)

    def _voltage_scale(self) -> float:
        if FaultKind.LIE_VOLTAGE not in self.vehicle.faults:
            return 1.0  # what the declared profile would give, without building it
        declared = self.vehicle.declared_profile()
        true_max = self.vehicle.spec.v_max
        return declared.v_max / true_max if true_max else 1.0

    # --- running ----------------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.link.run())
            group.create_task(self._conversation())
            group.create_task(self._telemetry())
            if self._own_physics:
                group.create_task(self._physics())

    async def _physics(self) -> None:
        while True:
            await self.clock.sleep(self._physics_dt)
            self.vehicle.advance(self._physics_dt, self.power_on)

    async def _conversation(self) -> None:
        while True:
            self._restart.clear()
            with contextlib.suppress(PevLinkError, OSError):
                await self._handshake()
                await self._watch()
            if not self._restart.is_set():
                await self.clock.sleep(1.0)

    async def _request_until_answered(self, message: Message) -> Message:
        while True:
            try:
                return await self.link.request(message)
            except (NakError, PeerRebooted):
                raise
            except PevLinkError:
                await self.clock.sleep(1.0)

    async def _handshake(self) -> None:
        spec = self.vehicle.spec
        await self.link.notify(Boot("vehicle", SUPPORTED_VERSIONS))
        await self._request_until_answered(
            Hello(
                versions=SUPPORTED_VERSIONS,
                vehicle_type=spec.vehicle_type,
                maker=_fit(spec.maker, 24),
                model=_fit(spec.name, 32),
                serial=self.serial[:24],
                firmware="sim-1",
            )
        )
        profile = self.vehicle.declared_profile()
        try:
            await self._request_until_answered(battery_message(self.vehicle))
        except NakError as exc:
            self.refused = str(exc)
            self._notify_event(f"refused: {exc}")
            await self._wait_restart()
            return
        self.refused = None
        await self._request_until_answered(
            ChargeRequest(round(profile.i_max, 2), round(profile.v_max, 2))
        )

    async def _wait_restart(self) -> None:
        await self._restart.wait()

    async def _watch(self) -> None:
        """After the handshake: end the charge when the battery says so."""
        last_flags = wire_flags(self.vehicle.bms_flags)
        while not self._restart.is_set():
            await self._watch_pause()
            if self._restart.is_set():
                return
            last = self.link.last_rx
            if self.power_on and last is not None and self.clock.monotonic() - last > T_LINK:
                self._power_off("the station fell silent")
            flags = wire_flags(self.vehicle.bms_flags)
            if flags != last_flags:
                # A BMS flag changed: tell the station now, not at the next telemetry period, so
                # it learns why the current stopped before it suspects the cable.
                last_flags = flags
                await self._send_telemetry()
            if not self.power_on or self.stop_sent:
                continue
            await self._maybe_stop()

    async def _watch_pause(self) -> None:
        """Between two looks at the battery (a simulation that knows when it changed may wait
        for that instead)."""
        await self.clock.sleep(0.1)

    async def _maybe_stop(self) -> None:
        """While powered: ask the station to stop once the battery is full or its BMS stopped."""
        state = self.vehicle.state.name
        reason: str | None = None
        if state == "FULL":
            reason = "full"
        elif state.startswith("STOPPED_BY_BMS") or state == "BMS_STOP":
            reason = "bms"
            await self._send_fault("bms", "Battery system stopped the charge")
        if reason is not None:
            self.stop_sent = True
            self.vehicle.set_grant(0.0)
            with contextlib.suppress(PevLinkError):
                await self.link.request(Stop(reason))

    async def _send_fault(self, code: str, text: str) -> None:
        if self.last_fault_sent == code:
            return
        self.last_fault_sent = code
        with contextlib.suppress(PevLinkError, OSError):
            await self.link.notify(Fault(code, "stop", text))

    async def _telemetry(self) -> None:
        while True:
            await self._send_telemetry()
            await self.clock.sleep(T_TEL_PERIOD)

    async def _send_telemetry(self) -> None:
        if self.garbage:
            junk = bytes(self._random.randrange(256) for _ in range(24))
            with contextlib.suppress(OSError):
                await self.link.write_raw(junk + b"$Q01 GRANT i=9*0000\r\n")
        if self.link.muted:
            return
        v = self.vehicle
        flags = wire_flags(v.bms_flags)
        if self.power_on and v.current_a > 0.05:
            flags |= int(BmsFlag.CHARGING)
        if flags & int(BmsFlag.CELL_OV):
            await self._send_fault("cellov", "A cell is over its maximum voltage")
        voltage = v.terminal_voltage_v * self._voltage_scale()
        values = (  # Telemetry's fields, in order: soc, v, i, temp, flags, cmin, cmax, ireq
            round(min(100.0, max(0.0, v.soc_pct)), 1),
            round(min(250.0, voltage), 2),
            round(v.current_a, 2),
            round(v.temperature_c, 1),
            flags,
            round(min(5.0, max(0.0, v.cell_min_v)), 3),
            round(min(5.0, max(0.0, v.cell_max_v)), 3),
            round(min(50.0, max(0.0, v.wants_current_a)), 2),
        )
        tel = self._last_tel
        if tel is None or values != self._last_tel_values:
            tel = self._last_tel = Telemetry(*values)
            self._last_tel_values = values
        # else the same numbers as last time: the same message, which the codec has checked and
        # written once already (a pack at rest, or in a slow taper, reports the same for minutes)
        with contextlib.suppress(OSError, ProtocolError):
            await self.link.notify(tel)

    # --- the station speaks -----------------------------------------------------------------------

    async def _on_request(self, message: Message) -> Message:
        if isinstance(message, Grant):
            # The grant applies at once while powered; before POWER it waits (nothing is drawn
            # until the station has checked the pack at rest).
            self.grant_a = message.current_a
            if self.power_on:
                self.vehicle.set_grant(message.current_a)
            return GrantReply(message.current_a)
        if isinstance(message, Power):
            self.power_on = bool(message.on)
            self.vehicle.set_grant(self.grant_a if self.power_on else 0.0)
            return PowerReply(round(self.vehicle.terminal_voltage_v if self.power_on else 0.0, 2))
        if isinstance(message, Stop):
            self.grant_a = 0.0
            self.vehicle.set_grant(0.0)
            self.stop_sent = True
            return StopReply()
        raise ProtocolError(ErrorCode.WRONG_STATE, f"a vehicle does not take {message.NAME}")

    async def _on_notice(self, message: Message) -> None:
        if isinstance(message, StationState):
            self.station_state = message.state
            self.station_text = message.text
            if message.state in ("ready", "waiting") and self.stop_sent and not self.power_on:
                self.stop_sent = False
            self._notify_event(f"station: {message.state}")
        elif isinstance(message, Summary):
            self.summary = message
            self.power_on = False
            self._notify_event(f"summary: {message.energy_wh} Wh")
        elif isinstance(message, Fault) and message.severity == "stop":
            # The station's fault ends the charge at once: draw nothing, whatever the switch does.
            self._power_off(f"station fault: {message.code}")
        elif isinstance(message, Boot):
            self.link.reset()
            self.power_on = False
            self.vehicle.set_grant(0.0)
            self.stop_sent = False
            self._restart.set()
        elif isinstance(
            message, ChargeRequestReply
        ):  # pragma: no cover - replies never arrive here
            pass

    def _power_off(self, why: str) -> None:
        """Stop drawing and treat power as off (§2.7 and §4.2: a lost link or a station fault)."""
        self.power_on = False
        self.grant_a = 0.0
        self.vehicle.set_grant(0.0)
        self._notify_event(f"power off: {why}")

    def _notify_event(self, text: str) -> None:
        if self.on_event is not None:
            self.on_event(text)

    def status(self) -> dict[str, Any]:
        return {
            "power_on": self.power_on,
            "grant_a": self.grant_a,
            "station_state": self.station_state,
            "station_text": self.station_text,
            "refused": self.refused,
            "silent": self.link.muted,
            "garbage": self.garbage,
            "protocol_version": PROTOCOL_VERSION,
        }


def _fit(text: str, limit: int) -> str:
    """Shorten at a word boundary, so a display never shows half a word."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,(-") + "…"


def battery_message(vehicle: SimVehicle) -> Battery:
    """The BATT a vehicle sends: its declared profile (true, unless made to lie) and its state."""
    profile = vehicle.declared_profile()
    return Battery(
        chemistry=profile.chemistry,
        cells_series=profile.cells_series,
        v_nom_v=round(profile.v_nom, 2),
        v_max_v=round(profile.v_max, 2),
        v_min_v=round(profile.v_min, 2),
        capacity_wh=round(profile.capacity_wh, 1),
        i_max_a=round(profile.i_max, 2),
        i_min_a=round(profile.i_min, 2),
        t_min_c=profile.t_min_c,
        t_max_c=profile.t_max_c,
        soc_pct=round(min(100.0, vehicle.soc_pct), 1),
        temperature_c=round(vehicle.temperature_c, 1),
        i_end_a=None if profile.i_end is None else round(profile.i_end, 2),
    )
