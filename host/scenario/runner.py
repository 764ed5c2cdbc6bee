"""The headless scenario runner: vehicles arrive at a station over a day, in simulated time.

It drives the real station (supervisor, allocator, ports, sessions, safety rules) on the simulated
hardware, with each vehicle's PEV Link agent on an in-memory cable (see
:mod:`hal.sim.memory_cable` and :mod:`host.scenario.rig`) and time kept by a
:class:`~hal.sim.vtime.VirtualTimeLoop`, so hours pass in seconds and the same seed gives
the same run.

Each arriving vehicle takes the lowest free port that can supply its pack, or queues for one (a
vehicle no port can supply is plugged into any free port, and the station refuses it). The rider
presses start once the port is ready, and unplugs when the charge ends, or at the end of the stay
if the scenario gives one. Every arrival ends with one of :data:`~host.scenario.result.OUTCOMES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable

from firmware.station.allocator import Policy, SeedPolicy, SharingPolicy
from firmware.station.eta import straight_line_seconds
from firmware.station.port import LiveSession, PortController, PortState
from firmware.station.station import StationError, StationSettings
from firmware.station.views import accounted_v as station_accounted_v
from hal.sim.vtime import LoopClock, run_virtual
from host.scenario.physics import acceptable_power_w, delivered_power_w
from host.scenario.result import EtaSample, Sample, ScenarioResult, VehicleRecord
from host.scenario.rig import Rig, hal_layout
from host.scenario.spec import Arrival, Scenario
from host.vehicle.faults import FaultKind

POLICIES: dict[str, Callable[[], Policy]] = {
    "sharing": SharingPolicy,
    "seed": SeedPolicy,
}
READY_TIMEOUT_S = 30.0
"""How long a rider waits for the port to say ready (or refuse) before giving up."""
FREE_TIMEOUT_S = 15.0
"""How long after an unplug the port may take to show itself free (PEV Link's T_LINK is 3 s)."""
WATCH_STEP_S = 1.0
MAX_VIOLATIONS_KEPT = 20


class ScenarioRun:
    """One run of a scenario under one allocation policy (build it on a running
    :class:`~hal.sim.vtime.VirtualTimeLoop`)."""

    rig_class: type[Rig] = Rig

    def __init__(
        self, scenario: Scenario, policy: str | Policy = "sharing", *, eta: bool = True
    ) -> None:
        self.scenario = scenario
        self.eta = eta
        """Sample each charging port's time to full with the power (as a phone page watching
        every port would); without, the run skips the estimates it would only record."""
        if isinstance(policy, str):
            if policy not in POLICIES:
                raise ValueError(f"unknown policy {policy!r}: use one of {', '.join(POLICIES)}")
            self.policy_name = policy
            self.policy = POLICIES[policy]()
        else:
            self.policy_name = type(policy).__name__
            self.policy = policy
        self.clock = LoopClock()
        settings = StationSettings(
            name=f"scenario {scenario.name}",
            budget_w=scenario.budget_w,
            poll_period_s=scenario.poll_period_s,
            sample_period_s=scenario.curve_period_s,
        )
        self.rig = self.rig_class(
            self.clock,
            hal_layout(scenario.layout, scenario.ports),
            settings,
            policy=self.policy,
            baud=scenario.baud,
            physics_dt_s=scenario.physics_dt_s,
            sensor_range_factor=scenario.sensor_range_factor,
            stage=scenario.stage,
        )
        self.records = [
            VehicleRecord(
                index=a.index,
                model=a.model,
                arrival_s=a.at_s,
                soc_arrival_pct=a.soc_pct,
                capacity_wh=self.rig.catalog[a.model].capacity_wh,
            )
            for a in scenario.arrivals
        ]
        self.result = ScenarioResult(
            scenario=scenario.name,
            policy=self.policy_name,
            seed=scenario.seed,
            ports=scenario.ports,
            budget_w=scenario.budget_w,
            window_s=scenario.window_s,
            vehicles=self.records,
        )
        self._free = set(self.rig.port_configs)
        self._queue: deque[tuple[VehicleRecord, Arrival]] = deque()
        self._active: dict[int, tuple[VehicleRecord, LiveSession | None]] = {}
        self._riders: set[asyncio.Task[None]] = set()
        self._energy_done_wh = 0.0
        self._arrived = 0

    # --- the run ----------------------------------------------------------------------------------

    async def run(self) -> ScenarioResult:
        started = time.perf_counter()
        self.rig.station.on_tick = self._on_tick
        async with self.rig.running():
            loops = [
                asyncio.create_task(self._sample_loop(), name="sampler"),
                asyncio.create_task(self._queue_loop(), name="queue"),
            ]
            try:
                await self._arrivals()
                await self._until_everyone_left()
            finally:
                self._close_out()
                for task in [*loops, *self._riders]:
                    task.cancel()
                await asyncio.gather(*loops, *self._riders, return_exceptions=True)
                self._take_sample()
        self.result.sim_s = self.clock.monotonic()
        self.result.wall_s = time.perf_counter() - started
        self.result.faults = list(self.rig.recorder.faults)
        return self.result

    async def _arrivals(self) -> None:
        for record, arrival in zip(self.records, self.scenario.arrivals, strict=True):
            if arrival.at_s >= self.scenario.end_s:
                break
            delay = arrival.at_s - self.clock.monotonic()
            if delay > 0:
                await self.clock.sleep(delay)
            self._arrived += 1
            self._queue.append((record, arrival))
            self._dispatch()

    async def _until_everyone_left(self) -> None:
        while self._queue or self._riders:
            if self.clock.monotonic() >= self.scenario.end_s:
                return
            await self.clock.sleep(min(WATCH_STEP_S, self.scenario.end_s - self.clock.monotonic()))

    async def _queue_loop(self) -> None:
        """Riders whose stay ends before a port is free leave the queue."""
        while True:
            await self.clock.sleep(WATCH_STEP_S)
            now = self.clock.monotonic()
            for item in list(self._queue):
                record, arrival = item
                if arrival.stay_s is not None and now >= arrival.at_s + arrival.stay_s:
                    self._queue.remove(item)
                    record.outcome = "left"
                    record.end_text = "left before a port was free"
                    record.left_s = now

    def _dispatch(self) -> None:
        """Give free ports to queued vehicles, first come first served where a port fits."""
        ports = sorted(self.rig.port_configs)
        for item in list(self._queue):
            record, arrival = item
            spec = self.rig.catalog[arrival.model]
            free = [p for p in sorted(self._free) if self.rig.fits(p, spec)]
            if not free:
                if any(self.rig.fits(p, spec) for p in ports) or not self._free:
                    continue
                free = sorted(self._free)  # nothing ever fits: the station will say so
            port_id = free[0]
            self._free.discard(port_id)
            self._queue.remove(item)
            task = asyncio.create_task(
                self._ride(record, arrival, port_id), name=f"rider-{port_id}"
            )
            self._riders.add(task)
            task.add_done_callback(self._riders.discard)

    # --- one rider --------------------------------------------------------------------------------

    async def _ride(self, record: VehicleRecord, arrival: Arrival, port_id: int) -> None:
        rig, clock = self.rig, self.clock
        port = rig.port(port_id)
        record.port_id = port_id
        record.plugged_s = clock.monotonic()
        self._active[port_id] = (record, None)
        plugged = await rig.plug(
            port_id, arrival.model, arrival.soc_pct, arrival.temperature_c, arrival.seed
        )
        leave_at = math.inf if arrival.stay_s is None else arrival.at_s + arrival.stay_s
        try:
            answered = await rig.wait_for(
                lambda: port.state in (PortState.READY, PortState.UNSUPPORTED), READY_TIMEOUT_S
            )
            if port.state == PortState.UNSUPPORTED:
                record.outcome, record.end_text = "unsupported", port.state_text
            elif not answered:
                record.outcome, record.end_text = "not_ready", port.state_text
            else:
                record.ready_s = clock.monotonic()
                await clock.sleep(self.scenario.start_delay_s)
                await self._charge(record, arrival, port_id, leave_at)
            if record.outcome in ("full", "stopped") and math.isfinite(leave_at):
                await clock.sleep(max(0.0, leave_at - clock.monotonic()))
            else:
                await clock.sleep(self.scenario.pickup_delay_s)
        finally:
            self._ride_ends(port_id)
            record.energy_in_wh = plugged.vehicle.energy_in_wh
            record.soc_end_pct = round(plugged.vehicle.soc_pct, 2)
            self._active.pop(port_id, None)
            if port_id in rig.plugged:
                await rig.unplug(port_id)
            self._energy_done_wh += record.energy_in_wh
            record.left_s = clock.monotonic()
        await rig.wait_for(lambda: port.state == PortState.EMPTY, FREE_TIMEOUT_S)
        self._free.add(port_id)
        self._dispatch()

    async def _charge(
        self, record: VehicleRecord, arrival: Arrival, port_id: int, leave_at: float
    ) -> None:
        rig, clock, station = self.rig, self.clock, self.rig.station
        try:
            session = await station.start(port_id)
        except StationError as exc:
            record.outcome, record.end_text = "not_ready", str(exc)
            return
        record.started_s = clock.monotonic()
        self._active[port_id] = (record, session)
        stop_sent = False
        fault = FaultKind(arrival.fault) if arrival.fault is not None else None
        fault_at = math.inf
        while session.end_reason is None:
            now = clock.monotonic()
            if fault is not None and fault_at == math.inf and session.power_on_at:
                fault_at = session.power_on_at + arrival.fault_after_s
            if fault is not None and now >= fault_at and port_id in rig.plugged:
                rig.plugged[port_id].agent.inject(fault)
                fault = None
                if arrival.fault == FaultKind.UNPLUG.value:
                    rig.world.detach(port_id)
            if now >= leave_at and not stop_sent:
                stop_sent = True
                with contextlib.suppress(StationError):
                    await station.stop(port_id, "user")
            due = min(
                fault_at if fault is not None else math.inf, math.inf if stop_sent else leave_at
            )
            await self._pause(port_id, session, due)
        record.end_reason = session.end_reason
        record.end_text = session.end_text
        record.energy_wh = session.energy_wh
        record.ended_s = (session.ended_at or clock.wall()) - (clock.wall() - clock.monotonic())
        if session.end_reason in ("full", "target"):
            record.outcome = "full"
        elif session.end_reason == "user":
            record.outcome = "left"
        elif session.end_reason == "fault":
            record.outcome = "fault"
            trip = rig.port(port_id).fault
            record.fault_code = trip.code if trip is not None else None
        else:
            record.outcome = "stopped"

    async def _pause(self, port_id: int, session: LiveSession, due_s: float) -> None:
        """Between two looks at a charging rider: the next is due at ``due_s`` at the latest."""
        await self.clock.sleep(WATCH_STEP_S)

    def _ride_ends(self, port_id: int) -> None:
        """The rider is about to take the vehicle: what it holds now is what it got."""

    def _close_out(self) -> None:
        """At the end of the scenario's time: whoever is still here is unfinished."""
        for port_id, (record, session) in list(self._active.items()):
            if record.outcome is None:
                record.outcome = "unfinished"
                if session is not None:
                    record.energy_wh = session.energy_wh
                plugged = self.rig.plugged.get(port_id)
                if plugged is not None:
                    record.energy_in_wh = plugged.vehicle.energy_in_wh
                    record.soc_end_pct = round(plugged.vehicle.soc_pct, 2)
        for record, _ in self._queue:
            record.outcome = "unfinished"
            record.end_text = "still waiting for a free port"
        for record in self.records:
            if record.outcome is None and record.arrival_s >= self.scenario.end_s:
                record.outcome = "unfinished"
                record.end_text = "arrives after the end of the scenario"

    # --- observation ------------------------------------------------------------------------------

    def _on_tick(self) -> None:
        """After every supervisor tick: grants against the budget, first power of each session."""
        station = self.rig.station
        allocated = 0.0
        measured = 0.0
        for port in station.ports.values():
            allocated += port.grant_a * accounted_v(port)
            if port.reading is not None and port.relay_closed:
                measured += port.reading.bus_voltage_v * port.reading.current_a
        result = self.result
        result.max_allocated_w = max(result.max_allocated_w, allocated)
        result.max_measured_w = max(result.max_measured_w, measured)
        if allocated > station.budget_w + 1e-6:
            result.budget_violations += 1
            if len(result.violations) < MAX_VIOLATIONS_KEPT:
                result.violations.append(
                    {
                        "t_s": round(self.clock.monotonic(), 2),
                        "allocated_w": round(allocated, 1),
                        "budget_w": station.budget_w,
                        "ports": {
                            p.port_id: [p.state.value, round(p.grant_a * accounted_v(p), 1)]
                            for p in station.ports.values()
                            if p.battery is not None and p.grant_a > 0
                        },
                    }
                )
        for record, session in self._active.values():
            if record.power_on_s is None and session is not None and session.power_on_at:
                record.power_on_s = session.power_on_at

    async def _sample_loop(self) -> None:
        while True:
            self._take_sample()
            await self.clock.sleep(self.scenario.sample_period_s)

    def _take_sample(self) -> None:
        rig, now = self.rig, self.clock.monotonic()
        rig.world.sync()
        delivered = demand = allocated = 0.0
        energy = self._energy_done_wh
        for port_id, plugged in rig.plugged.items():
            port = rig.port(port_id)
            limit = rig.port_configs[port_id].max_current_a
            delivered += delivered_power_w(plugged.vehicle)
            if port.state not in (PortState.UNSUPPORTED, PortState.FAULT):
                demand += acceptable_power_w(plugged.vehicle, limit)
            energy += plugged.vehicle.energy_in_wh
            allocated += port.grant_a * accounted_v(port)
        self.result.samples.append(
            Sample(
                t_s=round(now, 3),
                delivered_w=round(delivered, 2),
                demand_w=round(demand, 2),
                allocated_w=round(allocated, 2),
                energy_wh=round(energy, 3),
                plugged=len(rig.plugged),
                queued=len(self._queue),
            )
        )
        for port_id, (record, session) in self._active.items() if self.eta else ():
            port = rig.port(port_id)
            if session is None or port.state != PortState.CHARGING or port.telemetry is None:
                continue
            battery, reading = port.battery, port.reading
            watts = reading.bus_voltage_v * reading.current_a if reading is not None else 0.0
            capacity = battery.capacity_wh if battery is not None else record.capacity_wh
            record.eta.append(
                EtaSample(
                    t_s=round(now, 3),
                    soc_pct=port.telemetry.soc_pct,
                    eta_s=rig.station.eta_seconds(port),
                    straight_s=straight_line_seconds(port.telemetry.soc_pct, capacity, watts),
                )
            )


def accounted_v(port: PortController) -> float:
    """The voltage the station counts this port's grant at (firmware/station/views.py): the pack's
    vmax, or behind a stage that enforces current, the measured voltage plus its margin."""
    return station_accounted_v(port)


async def simulate(
    scenario: Scenario, policy: str | Policy = "sharing", *, eta: bool = True
) -> ScenarioResult:
    """Run a scenario on the running loop, which must be a :class:`VirtualTimeLoop`."""
    return await ScenarioRun(scenario, policy, eta=eta).run()


def run_scenario(
    scenario: Scenario, policy: str | Policy = "sharing", *, eta: bool = True
) -> ScenarioResult:
    """Run a scenario in virtual time on a fresh event loop; returns its result."""
    return run_virtual(simulate(scenario, policy, eta=eta))
