"""The console playing a side: ``--as-vehicle MODEL`` and ``--as-station``.

``--as-vehicle`` is the bench's simulated vehicle (:class:`host.vehicle.agent.VehicleAgent` with a
catalog model): BOOT, HELLO, BATT and REQ, then it answers GRANT, POWER and STOP, reports TEL every
second, and stops when its battery is full. Use it to try a station.

``--as-station`` is a minimal station, to try a vehicle: it answers HELLO, BATT (refusing a pack
above its port limit with ``NAK E210``, as the station does) and REQ, then grants the least of what
the vehicle asked, its declared maximum and the port's limits, announces power, lets it charge for
``charge_s`` seconds (or until the vehicle sends STOP or reports full), stops it, opens, and sends
the summary with the energy it integrated from the vehicle's telemetry. There is no relay and no
meter behind it: it exercises the protocol, not the power path.

Both speak through the shared :class:`~firmware.pevlink.link.Link`, so sequence numbers, retries,
heartbeats and NAKs follow the same rules as the station's; the console shows every line.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from firmware.pevlink.errors import ErrorCode, PevLinkError, ProtocolError
from firmware.pevlink.link import Link
from firmware.pevlink.messages import (
    Battery,
    BatteryReply,
    Boot,
    ChargeRequest,
    ChargeRequestReply,
    Fault,
    Grant,
    Hello,
    HelloReply,
    Message,
    Power,
    StationState,
    Stop,
    StopReply,
    Summary,
    Telemetry,
)
from firmware.pevlink.rules import check_battery, check_request, common_version
from firmware.pevlink.timers import I_BREAK_A, T_RAMP_MAX, T_TEL
from firmware.pevlink.vocabulary import BmsFlag
from host.console.session import Console
from host.vehicle.agent import VehicleAgent
from host.vehicle.catalog import load_catalog
from host.vehicle.model import SimVehicle


class RoleError(ValueError):
    """A role that cannot be played as asked (an unknown model)."""


def make_vehicle(
    model: str, soc_pct: float = 20.0, temperature_c: float = 25.0, seed: int = 0
) -> SimVehicle:
    """A simulated vehicle from the catalog (``pev-vehicle --list`` shows the models)."""
    catalog = {spec.id: spec for spec in load_catalog()}
    if model not in catalog:
        raise RoleError(f"unknown vehicle model {model!r}; models: {', '.join(catalog)}")
    return SimVehicle(catalog[model], soc_pct=soc_pct, temperature_c=temperature_c, seed=seed)


def vehicle_agent(
    console: Console,
    vehicle: SimVehicle,
    *,
    own_physics: bool = True,
    serial: str = "CONSOLE-0001",
    seed: int = 0,
) -> VehicleAgent:
    """The simulated vehicle, speaking through the console (run it with ``agent.run()``).

    ``own_physics`` advances the battery with the clock; leave it off when a simulated world
    (the bench) already advances it.
    """
    agent = VehicleAgent(
        vehicle, console.tap(), console.clock, serial=serial, seed=seed, own_physics=own_physics
    )
    agent.on_event = console.note
    return agent


@dataclass(frozen=True, slots=True)
class PortProfile:
    """What the minimal station says its port can do."""

    name: str = "pev-console"
    port: int = 1
    v_min_v: float = 10.0
    v_max_v: float = 84.0
    i_max_a: float = 10.0
    p_max_w: float = 600.0
    charge_s: float = 60.0
    """How long a charge runs before the station stops it (reason ``user``)."""


class MiniStation:
    """A minimal station side of PEV Link, to try a vehicle."""

    def __init__(self, console: Console, profile: PortProfile | None = None) -> None:
        self.console = console
        self.clock = console.clock
        self.profile = profile or PortProfile()
        self.link = Link(
            console.tap(),
            console.clock,
            on_request=self._on_request,
            on_notice=self._on_notice,
            name="console station",
        )
        self.hello: Hello | None = None
        self.battery: Battery | None = None
        self.request: ChargeRequest | None = None
        self.telemetry: Telemetry | None = None
        self.power_on = False
        self.energy_wh = 0.0
        self.peak_w = 0.0
        self.summaries: list[Summary] = []
        self._last_tel_at: float | None = None
        self._vehicle_stop: str | None = None
        self._stop_event = asyncio.Event()
        self._charge: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        try:
            await self.link.run()
        finally:
            for task in [*self._tasks, *([self._charge] if self._charge else [])]:
                task.cancel()

    def _spawn_notice(self, message: Message) -> None:
        async def send() -> None:
            with contextlib.suppress(PevLinkError, OSError):
                await self.link.notify(message)

        task = asyncio.create_task(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the vehicle speaks ----------------------------------------------------------------------

    async def _on_request(self, message: Message) -> Message:
        p = self.profile
        if isinstance(message, Hello):
            version = common_version(message)
            self._forget()
            self.hello = message
            return HelloReply(version, p.name[:32], p.port)
        if isinstance(message, Battery):
            check_battery(self.hello, message, p.v_min_v, p.v_max_v)
            self.battery = message
            self._spawn_notice(StationState("ready", "Ready: charging on request"))
            return BatteryReply(p.v_min_v, p.v_max_v, p.i_max_a, p.p_max_w)
        if isinstance(message, ChargeRequest):
            check_request(self.battery, message)
            self.request = message
            if self._charge is None or self._charge.done():
                self._charge = asyncio.create_task(self._run_charge())
            return ChargeRequestReply("granted")
        if isinstance(message, Stop):
            self._vehicle_stop = message.reason if message.reason != "user" else "vehicle"
            self._stop_event.set()
            return StopReply()
        raise ProtocolError(ErrorCode.WRONG_STATE, f"{message.NAME} is not accepted here")

    async def _on_notice(self, message: Message) -> None:
        if isinstance(message, Telemetry):
            now = self.clock.monotonic()
            if self.power_on and self._last_tel_at is not None:
                watts = max(0.0, message.voltage_v * message.current_a)
                self.energy_wh += watts * (now - self._last_tel_at) / 3600.0
                self.peak_w = max(self.peak_w, watts)
            self.telemetry = message
            self._last_tel_at = now
            if self.power_on and BmsFlag(message.flags) & BmsFlag.FULL:
                self._vehicle_stop = self._vehicle_stop or "full"
                self._stop_event.set()
        elif isinstance(message, Fault) and message.severity == "stop":
            self._vehicle_stop = "fault"
            self._stop_event.set()
        elif isinstance(message, Boot):
            self.link.reset()
            if self._charge is not None:
                self._charge.cancel()
            self._forget()

    def _forget(self) -> None:
        self.hello = self.battery = self.request = None
        self.power_on = False
        self._vehicle_stop = None
        self._stop_event.clear()

    # --- the station acts ------------------------------------------------------------------------

    def grant_a(self) -> float:
        assert self.battery is not None and self.request is not None
        p = self.profile
        return round(
            min(
                self.request.current_a,
                self.battery.i_max_a,
                p.i_max_a,
                p.p_max_w / self.battery.v_max_v,
            ),
            2,
        )

    async def _run_charge(self) -> None:
        assert self.battery is not None
        self.energy_wh = self.peak_w = 0.0
        self._stop_event.clear()
        self._vehicle_stop = None
        started: float | None = None
        reason = "user"
        try:
            self._spawn_notice(StationState("granted", "Starting"))
            await self.link.request(Grant(self.grant_a(), self.battery.v_max_v, "port"))
            await self.link.request(Power(1))
            self.power_on = True
            started = self.clock.monotonic()
            self._spawn_notice(StationState("charging", "Charging"))
            with contextlib.suppress(TimeoutError):
                await self._wait_stop(self.profile.charge_s)
            reason = self._vehicle_stop or "user"
            self._spawn_notice(StationState("stopping", "Stopping"))
            if self._vehicle_stop is None:
                await self.link.request(Stop("user", "Charge time reached"))
            await self._wait_ramp_down()
        except PevLinkError as exc:
            reason = "fault"
            self.console.note(f"station: the vehicle did not complete the charge: {exc}")
        finally:
            self.power_on = False
        with contextlib.suppress(PevLinkError, OSError):
            await self.link.request(Power(0))
        secs = 0 if started is None else int(self.clock.monotonic() - started)
        summary = Summary(round(self.energy_wh, 3), secs, reason, round(self.peak_w, 1))
        self.summaries.append(summary)
        with contextlib.suppress(PevLinkError, OSError):
            await self.link.notify(summary)
            await self.link.notify(StationState("done", "Finished"))

    async def _wait_stop(self, seconds: float) -> None:
        """Until the vehicle stops, or ``seconds`` pass; a vehicle silent for T_TEL ends it too."""
        deadline = self.clock.monotonic() + seconds
        while not self._stop_event.is_set():
            now = self.clock.monotonic()
            if now >= deadline:
                raise TimeoutError
            if self._last_tel_at is not None and now - self._last_tel_at > T_TEL:
                raise PevLinkError("no telemetry for T_TEL")
            await self.clock.sleep(min(0.1, deadline - now))

    async def _wait_ramp_down(self) -> None:
        deadline = self.clock.monotonic() + T_RAMP_MAX
        while self.clock.monotonic() < deadline:
            tel = self.telemetry
            if tel is not None and tel.current_a <= I_BREAK_A:
                return
            await self.clock.sleep(0.1)
