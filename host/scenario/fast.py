"""The fast scenario runner: the same station, the same vehicles, less waking up.

It runs what :mod:`host.scenario.runner` runs, composed the same way (``build_memory`` for the
simulated hardware, :func:`firmware.compose.build_station` for the station): the real station with
its supervisor, safety core, allocator, port state machines and PEV Link codec over in-memory
cables, at the same poll period. What it changes is only on the simulated side, where the
reference runner spends most of its time on wake-ups and reads that carry no news (measured with
cProfile, see docs/benchmarks.md):

- **The physics steps only when something looks at it, and a steady port less often.** The world
  has no timer of its own: a sensor read brings the port's physics to the present (as the
  reference runner's reads already do), and the vehicle model's first-order response is exact
  over any step, so nothing is lost between reads. A port whose vehicle is steady (its current
  settled on its target, or off, and its relay as it was) is stepped at least every
  :data:`STEADY_STEP_S`, its telemetry and its sensor moving by about what they resolve meanwhile;
  a grant, a notice, a fault, a switch (the relay's ``before_switch``) or an unplug first bring it
  to the present, so each change takes effect when it happens.
- **A sensor read that would show nothing new is not taken through the driver again.** What the
  port's INA228/INA219 model sees is compared with what it saw at the last driver read; within
  :data:`VOLTS_TOLERANCE_V` and :data:`AMPS_TOLERANCE_A` the station gets that reading again, with
  the present time. Any other change (a switch, a grant, a fault, a failing bus) is read through the
  adafruit driver and the register model as before.
- **Vehicles idle without waking.** The reference vehicle agent looks at its battery ten times a
  second to notice that it is full, stopped by its BMS, or that a flag changed; here the world tells
  it when the physics moved, and it looks then, and once a second for a silent station while it has
  power. The vehicle still sends its telemetry every ``T_TEL_PERIOD``, as PEV Link requires.
- **Riders wait on the station.** A rider's watch wakes when its session ends or first gets
  power (seen after a supervisor pass), or when its stay or its fault is due, not every second.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable
from typing import Any

from firmware.pevlink import Heartbeat, Message
from firmware.station.allocator import Policy
from firmware.station.port import LiveSession
from hal.interfaces import PowerMonitor, PowerReading
from hal.sim.backend import CurrentMonitor
from hal.sim.memory_cable import MemoryLine
from hal.sim.vtime import run_virtual
from hal.sim.world import BenchWorld, SimPort
from host.scenario.result import ScenarioResult
from host.scenario.rig import Rig
from host.scenario.runner import ScenarioRun
from host.scenario.spec import Scenario
from host.vehicle.agent import VehicleAgent
from host.vehicle.faults import FaultKind
from host.vehicle.model import SimVehicle

VOLTS_TOLERANCE_V = 0.01
"""A bus voltage that moved less than this since the last driver read is not read again (the
INA228's bus LSB is 0.2 mV; a pack in constant current rises by about 2 mV a second)."""
AMPS_TOLERANCE_A = 0.002
"""Likewise for the current (the INA228 here resolves about 0.2 mA)."""
LINK_CHECK_S = 1.0
"""How often a powered vehicle checks that the station still speaks (it must act within T_LINK)."""
STEADY_STEP_S = 5.0
"""The longest a steady port's physics waits for its next step. A pack charging at 1 C gains
about 2 mV a second (10 mV, one step of its telemetry's voltage, in 5 s) and 0.14 % of charge."""


class CoalescedMonitor(PowerMonitor):
    """A port's sensor read through its driver only when what the sensor sees has changed."""

    def __init__(self, inner: PowerMonitor, world: BenchWorld, port: SimPort) -> None:
        # The driver's read, not the backend's wrapper that would bring every port to the present.
        self.inner = inner.inner if isinstance(inner, CurrentMonitor) else inner
        self.world = world
        self.port = port
        self.part = inner.part
        self.max_bus_voltage_v = inner.max_bus_voltage_v
        self._seen: tuple[float, float] | None = None
        self._last: PowerReading | None = None
        self.driver_reads = 0
        self.reads = 0

    async def read(self) -> PowerReading:
        self.world.sync_port(self.port.port_id)
        self.reads += 1
        sensor, port = self.port.sensor, self.port
        volts, amps = sensor.bus_voltage_v, sensor.current_a
        last, seen = self._last, self._seen
        failing = port.bus is not None and port.bus.fail_next.get(port.address, 0) > 0
        if (
            last is not None
            and seen is not None
            and not failing
            and abs(volts - seen[0]) <= VOLTS_TOLERANCE_V
            and abs(amps - seen[1]) <= AMPS_TOLERANCE_A
        ):
            return PowerReading(
                last.bus_voltage_v,
                last.current_a,
                last.power_w,
                last.overflow,
                self.world.clock.monotonic(),
            )
        self._last = self._seen = None
        reading = await self.inner.read()  # a failure is raised, and nothing is kept
        self.driver_reads += 1
        self._last, self._seen = reading, (volts, amps)
        return reading

    def describe(self) -> dict[str, object]:
        return self.inner.describe()


class QuietVehicleAgent(VehicleAgent):
    """The vehicle agent, woken by its battery's physics instead of ten times a second."""

    def __init__(self, *args: Any, sync: Callable[[bool], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync = sync
        """Bring this vehicle's physics to the present (True: even when it is steady)."""
        self._wake = asyncio.Event()
        self._seen: tuple[object, int] | None = None

    def physics_moved(self) -> None:
        """The world stepped: wake the watch if the battery's state or flags changed."""
        v = self.vehicle
        now = (v.state, int(v.bms_flags))  # the wire flags are a function of these
        if now != self._seen:
            self._seen = now
            self._wake.set()

    def inject(self, kind: FaultKind) -> None:
        self._sync(True)
        super().inject(kind)

    def _power_off(self, why: str) -> None:
        self._sync(True)  # a lost link or a station fault cuts the draw from now on
        super()._power_off(why)

    async def _send_telemetry(self) -> None:
        self._sync(False)  # a steady vehicle reports itself as of up to STEADY_STEP_S ago
        await super()._send_telemetry()

    async def _on_notice(self, message: Message) -> None:
        if isinstance(message, Heartbeat):
            await super()._on_notice(message)  # the station still speaks: nothing to look at
            return
        self._sync(True)  # a SUM, FAULT or BOOT may turn power off
        await super()._on_notice(message)
        self._wake.set()  # a BOOT restarts the conversation; a SUM or FAULT turns power off

    async def _on_request(self, message: Message) -> Message:
        self._sync(True)  # a grant changes what flows from now on, not since the last step
        reply = await super()._on_request(message)
        self._wake.set()
        return reply

    async def _watch_pause(self) -> None:
        """Until the vehicle's state changes, or LINK_CHECK_S while it has power."""
        loop = asyncio.get_running_loop()
        handle = loop.call_later(LINK_CHECK_S, self._wake.set) if self.power_on else None
        try:
            await self._wake.wait()
        finally:
            if handle is not None:
                handle.cancel()
            self._wake.clear()


class FastRig(Rig):
    """The scenario rig with coalesced sensor reads, no physics timer and quiet vehicles."""

    run_world = False

    def adapt_hardware(self) -> None:
        self.monitors: dict[int, CoalescedMonitor] = {}
        for port_id, port_hw in self.hardware.ports.items():
            sim_port = self.world.ports[port_id]
            monitor = CoalescedMonitor(port_hw.monitor, self.world, sim_port)
            port_hw.monitor = monitor
            self.monitors[port_id] = monitor
            # A switch changes what flows from its moment on, not since the port's last step.
            sim_port.relay.before_switch = functools.partial(
                self.world.sync_port, port_id, force=True
            )
        self._agents: dict[int, QuietVehicleAgent] = {}
        self.world.steady_step_s = STEADY_STEP_S
        self.world.on_stepped = self._physics_moved

    def _physics_moved(self, port_id: int) -> None:
        agent = self._agents.get(port_id)
        if agent is not None:
            agent.physics_moved()

    def make_agent(
        self, vehicle: SimVehicle, line: MemoryLine, serial: str, seed: int
    ) -> VehicleAgent:
        port_id = next(p for p, end in self._vehicle_ends.items() if end is line)

        def sync(force: bool) -> None:
            self.world.sync_port(port_id, force=force)

        agent = QuietVehicleAgent(vehicle, line, self.clock, serial=serial, seed=seed, sync=sync)
        self._agents[port_id] = agent
        return agent

    async def unplug(self, port_id: int) -> SimVehicle:
        self._agents.pop(port_id, None)
        return await super().unplug(port_id)

    def read_counts(self) -> tuple[int, int]:
        """(sensor reads the station made, reads that went through the driver)."""
        return (
            sum(m.reads for m in self.monitors.values()),
            sum(m.driver_reads for m in self.monitors.values()),
        )


class FastScenarioRun(ScenarioRun):
    """:class:`~host.scenario.runner.ScenarioRun` on a :class:`FastRig`, riders woken by events."""

    rig_class = FastRig

    def __init__(
        self, scenario: Scenario, policy: str | Policy = "sharing", *, eta: bool = True
    ) -> None:
        super().__init__(scenario, policy, eta=eta)
        self._watching: dict[int, tuple[LiveSession, asyncio.Event, bool]] = {}

    def _close_out(self) -> None:
        self.rig.world.sync()  # the steady ports' last seconds, before their charge is counted
        super()._close_out()

    def _ride_ends(self, port_id: int) -> None:
        self.rig.world.sync_port(port_id, force=True)

    def _on_tick(self) -> None:
        super()._on_tick()
        for port_id, (session, event, powered) in list(self._watching.items()):
            if session.end_reason is not None or (not powered and session.power_on_at):
                self._watching[port_id] = (session, event, bool(session.power_on_at))
                event.set()

    async def _pause(self, port_id: int, session: LiveSession, due_s: float) -> None:
        event = asyncio.Event()
        self._watching[port_id] = (session, event, bool(session.power_on_at))
        wake: Callable[[], None] = event.set
        delay = due_s - self.clock.monotonic()
        handle = (
            asyncio.get_running_loop().call_later(max(0.0, delay), wake)
            if math.isfinite(delay)
            else None
        )
        try:
            if session.end_reason is None:
                await event.wait()
        finally:
            self._watching.pop(port_id, None)
            if handle is not None:
                handle.cancel()


async def simulate_fast(
    scenario: Scenario, policy: str | Policy = "sharing", *, eta: bool = True
) -> ScenarioResult:
    """Run a scenario with the fast runner on the running :class:`VirtualTimeLoop`."""
    return await FastScenarioRun(scenario, policy, eta=eta).run()


def run_fast_scenario(
    scenario: Scenario, policy: str | Policy = "sharing", *, eta: bool = True
) -> ScenarioResult:
    """The fast runner on a fresh virtual-time loop; the same outcomes as ``run_scenario``."""
    return run_virtual(simulate_fast(scenario, policy, eta=eta))
