"""The physical upper bound of a scenario: every watt of the budget to some vehicle able to take it.

The same arrivals, ports, port queue and riders as :mod:`host.scenario.runner`, the same vehicle
physics, but no protocol and no station: the budget is shared out every step by water-filling over
what each vehicle could take at that instant (its charger's limit, its BMS, its constant-voltage
taper). The riders do what the runner's do, and nothing sooner: a rider takes the lowest free port
that fits, first come first served, or leaves the line at the end of the stay; presses start
``start_delay_s`` after plugging in (the runner's rider waits that long after the port says ready,
which is later still); whose vehicle is full stays away until the end of the stay (without one,
comes ``pickup_delay_s`` after the charge ends); whose stay ends first stops the charge and
unplugs ``pickup_delay_s`` later (the charge flows at full power :data:`STOP_ALLOWANCE_S` past the
end of the stay). The handshake takes no time, and a port is free the instant its rider unplugs.
With stays, when each port is taken and freed is thus the riders' doing, the same under every
policy; what a policy decides is only who gets the power, and no rule working through real
messages, sensors and switches delivers more at any moment. The ratio of a policy's figures to
these says how close it comes.

``riders=False`` gives the earlier bound (before 2026-12-02), kept for comparison: a vehicle draws
from the moment it is plugged in and a full vehicle frees its port at once, as the scenario's
riders do not; it also serves the line sooner than they can.

With ``stage`` set (every port behind a CC/CV stage, as the runner's ``--stage elcon``) the packs
are bare, as there: each is held by an ideal stage at its vmax (never above the port's limit) and
the current its share allows, so near full it takes what brings its terminals, not its highest
cell, to vmax, which is more than a vehicle's own controller takes. That is the bound for (a').
"""

from __future__ import annotations

import math
import time

from firmware.pevlink.timers import T_RAMP_MAX
from firmware.station.allocator import water_fill
from host.scenario.physics import (
    acceptable_current_a,
    current_for_power_a,
    delivered_power_w,
    stage_voltage_v,
    voltage_at_v,
)
from host.scenario.result import Sample, ScenarioResult, VehicleRecord
from host.scenario.rig import hal_layout
from host.scenario.spec import Arrival, Scenario
from host.vehicle.catalog import load_catalog
from host.vehicle.model import SimVehicle
from host.vehicle.spec import VehicleState

STOP_ALLOWANCE_S = 1.0 + T_RAMP_MAX
"""Full power this long past the end of a stay: the runner's rider looks once a second, and the
station's stop ramps for at most ``T_RAMP_MAX``. The port is free then (plus the pickup delay),
never later than under the station, which shows it free PEV Link's ``T_LINK`` (3 s) after the
unplug (tests/host/test_scenario.py holds the two together)."""


def physical_bound(scenario: Scenario, step_s: float = 2.0, riders: bool = True) -> ScenarioResult:
    """The bound with the scenario's riders (``riders``, the default) or, with ``riders=False``,
    the earlier bound that frees a port the moment its vehicle is full and draws at plug-in."""
    started = time.perf_counter()
    bare = bool(scenario.stage)
    catalog = {spec.id: spec for spec in load_catalog()}
    ports = {p.id: p for p in hal_layout(scenario.layout, scenario.ports).ports}
    records = [
        VehicleRecord(
            index=a.index,
            model=a.model,
            arrival_s=a.at_s,
            soc_arrival_pct=a.soc_pct,
            capacity_wh=catalog[a.model].capacity_wh,
        )
        for a in scenario.arrivals
    ]
    result = ScenarioResult(
        scenario=scenario.name,
        policy=("bound, stages" if bare else "bound") + ("" if riders else ", ports freed at once"),
        seed=scenario.seed,
        ports=scenario.ports,
        budget_w=scenario.budget_w,
        window_s=scenario.window_s,
        vehicles=records,
    )

    def fits(port_id: int, model: str) -> bool:
        spec, port = catalog[model], ports[port_id]
        return port.min_voltage_v <= spec.v_min and spec.v_max <= port.max_voltage_v

    pending = list(zip(records, scenario.arrivals, strict=True))
    queue: list[tuple[VehicleRecord, Arrival]] = []
    free = set(ports)
    on_port: dict[int, tuple[VehicleRecord, Arrival, SimVehicle]] = {}
    power_from: dict[int, float] = {}
    """When each port's vehicle may first draw: its rider presses start after plugging in."""
    release_at: dict[int, float] = {}
    """Ports whose charge has ended, and when their rider unplugs (the port is then free)."""
    free_since = dict.fromkeys(ports, 0.0)
    """The exact moment each free port came free (the loop's steps only round it up)."""
    done_wh = 0.0
    next_sample = 0.0
    t = 0.0

    def end(port_id: int, outcome: str, unplug_at: float) -> None:
        """The charge on ``port_id`` ends now; its rider unplugs at ``unplug_at``."""
        record, _, vehicle = on_port[port_id]
        record.outcome = outcome
        record.ended_s = t
        record.energy_in_wh = record.energy_wh = vehicle.energy_in_wh
        record.soc_end_pct = round(vehicle.soc_pct, 2)
        release_at[port_id] = unplug_at

    def unplug(port_id: int) -> None:
        nonlocal done_wh
        record, _, vehicle = on_port.pop(port_id)
        free_since[port_id] = release_at.pop(port_id, t)
        power_from.pop(port_id, None)
        record.left_s = t
        done_wh += vehicle.energy_in_wh
        free.add(port_id)

    while t < scenario.end_s and (pending or queue or on_port):
        for port_id, at in list(release_at.items()):
            if t >= at:
                unplug(port_id)
        while pending and pending[0][1].at_s <= t:
            queue.append(pending.pop(0))
        for item in list(queue):
            record, arrival = item
            if arrival.stay_s is None or t < arrival.at_s + arrival.stay_s:
                continue
            came_free = [p for p in free if fits(p, arrival.model)]
            if riders and any(free_since[p] <= arrival.at_s + arrival.stay_s for p in came_free):
                continue  # a port came free before the stay ended, between two steps: take it
            queue.remove(item)
            record.outcome = "left"
            record.left_s = t
        for item in list(queue):
            record, arrival = item
            usable = [p for p in sorted(free) if fits(p, arrival.model)]
            if not usable:
                if not any(fits(p, arrival.model) for p in ports):
                    queue.remove(item)
                    record.outcome = "unsupported"
                continue
            port_id = usable[0]
            free.discard(port_id)
            queue.remove(item)
            record.port_id = port_id
            record.plugged_s = record.started_s = t
            vehicle = SimVehicle(
                catalog[arrival.model],
                soc_pct=arrival.soc_pct,
                temperature_c=arrival.temperature_c,
                ambient_c=arrival.temperature_c,
                seed=arrival.seed,
                on_board_controller=not bare,
            )
            on_port[port_id] = (record, arrival, vehicle)
            plugged_at = max(arrival.at_s, free_since[port_id])
            power_from[port_id] = plugged_at + scenario.start_delay_s if riders else t
        # Share the budget: water-fill over what each vehicle could take now.
        # A whole step of power to a vehicle whose start falls in it: the bound errs upwards.
        order = sorted(p for p in on_port if p not in release_at and t + step_s > power_from[p])
        amps = [
            acceptable_current_a(on_port[p][2], ports[p].max_current_a, ports[p].max_voltage_v)
            for p in order
        ]
        watts = [
            a * voltage_at_v(on_port[p][2], a) if a > 0 else 0.0
            for p, a in zip(order, amps, strict=True)
        ]
        shares = water_fill(scenario.budget_w, [0.0] * len(order), watts)
        for port_id, a, w, share in zip(order, amps, watts, shares, strict=True):
            record, _, vehicle = on_port[port_id]
            port = ports[port_id]
            if w <= 0:
                amps_now = 0.0
            elif share >= w - 1e-6:
                # All it can take: its own controller, or the stage's voltage limit, holds it
                # (and ends the charge).
                amps_now = min(vehicle.spec.i_max, port.max_current_a)
            else:
                amps_now = current_for_power_a(vehicle, share, a)
            if bare:
                vehicle.set_supply_limits(stage_voltage_v(vehicle, port.max_voltage_v), amps_now)
            vehicle.set_grant(amps_now)
            if record.power_on_s is None and amps_now > 0:
                record.power_on_s = t
        if t >= next_sample:
            next_sample += scenario.sample_period_s
            result.samples.append(
                Sample(
                    t_s=t,
                    delivered_w=round(sum(delivered_power_w(v) for _, _, v in on_port.values()), 2),
                    demand_w=round(sum(watts), 2),
                    allocated_w=round(min(scenario.budget_w, sum(watts)), 2),
                    energy_wh=round(
                        done_wh + sum(v.energy_in_wh for _, _, v in on_port.values()), 3
                    ),
                    plugged=len(on_port),
                    queued=len(queue),
                )
            )
        for port_id, (_, _, vehicle) in on_port.items():
            vehicle.advance(step_s, port_id in order)
        t += step_s
        for port_id in list(on_port):
            if port_id in release_at:
                continue
            record, arrival, vehicle = on_port[port_id]
            leave_at = math.inf if arrival.stay_s is None else arrival.at_s + arrival.stay_s
            # The scenario's riders: one whose charge ends comes back at the end of the stay (or
            # after the pickup delay if it has none); one whose stay ends first stops the charge
            # and unplugs after the pickup delay.
            done = {VehicleState.FULL: "full", VehicleState.STOPPED_BY_BMS: "stopped"}
            if vehicle.state in done:
                if not riders:
                    unplug_at = t
                elif math.isfinite(leave_at):
                    unplug_at = max(t, leave_at)
                else:
                    unplug_at = t + scenario.pickup_delay_s
                end(port_id, done[vehicle.state], unplug_at)
            elif not riders and t >= leave_at:
                end(port_id, "left", t)
            elif t >= leave_at + STOP_ALLOWANCE_S:
                end(port_id, "left", leave_at + STOP_ALLOWANCE_S + scenario.pickup_delay_s)
        for port_id, at in list(release_at.items()):
            if t >= at:
                unplug(port_id)
    for port_id in list(on_port):
        if port_id not in release_at:
            end(port_id, "unfinished", t)
        unplug(port_id)
    for record, _ in queue:
        record.outcome = "unfinished"
    for record, _ in pending:
        record.outcome = "unfinished"
    result.samples.append(Sample(t, 0.0, 0.0, 0.0, round(done_wh, 3), 0, len(queue) + len(pending)))
    result.sim_s = t
    result.wall_s = time.perf_counter() - started
    result.max_allocated_w = max((s.allocated_w for s in result.samples), default=0.0)
    return result
