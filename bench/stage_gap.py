"""Where (a') loses against the bound: the energy gap behind stages, split by cause.

``python -m bench.stage_gap [--scenario FILE] [--budget W]`` runs the scenario with a simulated
TC/Elcon charger behind every port (as ``pev-scenario FILE --fast --stage elcon``) and, after
every supervisor pass, compares what flows into the packs with what could: the least of the
budget and what every plugged bare pack could take now (its stage at vmax, its current at the
port's and its BMS's limit). The difference, integrated over time, is split into:

- ``not_powered``: packs plugged in but not yet charging (handshake, the rider's start, the
  stage's start) or ramping down, while the others could not take their share;
- while the powered packs could take more than the budget: ``unallocated`` (budget the grants,
  as counted, leave unused: rounding to the stage's step, minimums that do not fit), ``margin``
  (the counted voltage above the measured one), ``unused_grant`` (a grant above what the pack
  can take: its taper), ``stage_rounding`` (a grant above what its stage is set to),
  ``slew`` (a set point above what flows: the stage still ramping);
- while they could not: ``under_granted`` (a pack able to take more than its grant while
  budget is free: a cap still growing), ``stage_rounding`` and ``slew`` as above.

It prints the figures in watt-hours beside the bound for bare packs behind stages (c', with the
scenario's riders: host/scenario/bound.py), and how often a charging port's grant changed (each
change is a PEV Link GRANT and a stage command). ``--scenario bench/scenario-allocation.toml``
runs the whole day (5 to 8 minutes of CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR
from firmware.station.port import PortState
from hal.sim.vtime import run_virtual
from host.scenario.bound import physical_bound
from host.scenario.fast import FastScenarioRun
from host.scenario.physics import acceptable_current_a, voltage_at_v
from host.scenario.spec import load_scenario

SCENARIO = BENCH_DIR / "scenario-busy.toml"


class GapRun(FastScenarioRun):
    """The fast runner, with the gap's terms integrated after every supervisor pass."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wh: dict[str, float] = {}
        self.short_s = 0.0
        self.over_s = 0.0
        self.grant_changes = 0
        self._grants: dict[int, float] = {}
        self._last: float | None = None

    def _add(self, name: str, watts: float, dt: float) -> None:
        self.wh[name] = self.wh.get(name, 0.0) + watts * dt / 3600.0

    def _on_tick(self) -> None:
        super()._on_tick()
        now = self.clock.monotonic()
        last, self._last = self._last, now
        if last is None or now <= last:
            return
        dt = now - last
        station, rig = self.rig.station, self.rig
        budget = station.budget_w
        everyone = powered_w = counted = at_measured = usable = at_set = flowing = 0.0
        for port_id, plugged in rig.plugged.items():
            port, vehicle = station.ports[port_id], plugged.vehicle
            limits = rig.port_configs[port_id]
            could = acceptable_current_a(vehicle, limits.max_current_a, limits.max_voltage_v)
            could_w = could * voltage_at_v(vehicle, could) if could > 0 else 0.0
            everyone += could_w
            if not (port.state == PortState.CHARGING and port.relay_closed and port.battery):
                continue
            if self._grants.get(port_id, port.grant_a) != port.grant_a:
                self.grant_changes += 1
            self._grants[port_id] = port.grant_a
            charger = rig.chargers[port_id]
            volts, grant = vehicle.terminal_voltage_v, port.grant_a
            setpoint = charger.current_set_a if charger.output_enabled else 0.0
            powered_w += could_w
            counted += grant * (port.account_v or port.battery.v_max_v)
            at_measured += grant * volts
            usable += min(grant, could) * volts
            at_set += min(setpoint, grant, could) * volts
            flowing += vehicle.current_a * volts
        ideal = min(budget, everyone)
        self._add("ideal", ideal, dt)
        self._add("delivered", flowing, dt)
        self._add("not_powered", ideal - min(budget, powered_w), dt)
        if flowing > budget:
            self.over_s += dt
        if powered_w >= budget:
            self.short_s += dt
            self._add("unallocated", budget - counted, dt)
            self._add("margin", counted - at_measured, dt)
            self._add("unused_grant", at_measured - usable, dt)
        else:
            self._add("under_granted", powered_w - usable, dt)
        self._add("stage_rounding", usable - at_set, dt)
        self._add("slew", at_set - flowing, dt)


def run(scenario: Path = SCENARIO, budget_w: float | None = None) -> dict[str, Any]:
    plan = load_scenario(scenario)
    plan = replace(plan, stage="elcon", budget_w=budget_w or plan.budget_w)

    async def main() -> GapRun:
        gap = GapRun(plan, "sharing")
        await gap.run()
        return gap

    gap = run_virtual(main())
    bound = physical_bound(plan)
    figures: dict[str, Any] = {k: round(v, 2) for k, v in gap.wh.items()}
    figures["energy_wh"] = round(sum(v.energy_in_wh for v in gap.result.vehicles), 2)
    figures["bound_wh"] = round(sum(v.energy_in_wh for v in bound.vehicles), 2)
    figures["ratio_to_bound"] = round(figures["energy_wh"] / figures["bound_wh"], 4)
    figures["short_s"] = round(gap.short_s, 1)
    figures["measured_above_budget_s"] = round(gap.over_s, 2)
    figures["max_measured_w"] = round(gap.result.max_measured_w, 1)
    figures["grant_changes"] = gap.grant_changes
    figures["faults"] = len(gap.result.faults)
    return {"scenario": plan.name, "budget_w": plan.budget_w, **figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stage_gap", description=__doc__)
    parser.add_argument("--scenario", type=Path, default=SCENARIO)
    parser.add_argument("--budget", type=float, help="override the budget in watts")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.scenario, args.budget), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
