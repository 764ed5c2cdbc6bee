"""A scenario behind stages: the rig's chargers are the HAL's own composition, and the bound for
bare packs behind stages is a bound (docs/benchmarks.md, "Stage accounting")."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hal.elcon import LEASE_S, ElconStage
from hal.sim.vtime import run_virtual
from host.scenario import parse_scenario
from host.scenario.bound import physical_bound
from host.scenario.fast import FastScenarioRun
from host.scenario.physics import acceptable_current_a, current_for_power_a, voltage_at_v
from host.scenario.result import ScenarioResult
from host.scenario.spec import Scenario
from host.vehicle.catalog import load_catalog
from host.vehicle.model import SimVehicle


def two_bikes() -> Scenario:
    return parse_scenario(
        {
            "scenario": {
                "name": "two-bikes",
                "seed": 3,
                "ports": 2,
                "layout": "ina228",
                "budget_w": 200,
                "end_s": 120,
                "stage": "elcon",
            },
            "arrivals": {
                "count": 2,
                "window_s": 10,
                "soc_pct": [30, 40],
                "mix": {"ebike-36v-500wh": 1},
            },
        }
    )


class DriverWatch(FastScenarioRun):
    """Notes each port's stage driver while the station has it open."""

    drivers: dict[int, object]

    def _on_tick(self) -> None:
        super()._on_tick()
        for port_id, port in self.rig.hardware.ports.items():
            inner = getattr(port.stage, "inner", None)
            if inner is not None:
                self.drivers.setdefault(port_id, inner)


def test_the_rig_builds_its_chargers_through_the_hal_opener_with_the_lease() -> None:
    async def main() -> tuple[ScenarioResult, dict[int, object]]:
        run = DriverWatch(two_bikes(), "sharing")
        run.drivers = {}
        return await run.run(), run.drivers

    result, drivers = run_virtual(main())
    assert result.faults == []
    assert all(v.power_on_s is not None for v in result.vehicles)
    assert sorted(drivers) == [1, 2]
    for driver in drivers.values():
        assert isinstance(driver, ElconStage)
        assert driver.lease_s == LEASE_S
        assert driver.limits.max_voltage_v == 84.0  # the charger's 130 V, capped at the port's
    assert result.max_measured_w <= 200.0


def test_a_share_of_the_budget_is_the_current_that_takes_that_power() -> None:
    spec = next(s for s in load_catalog() if s.id == "ebike-36v-500wh")
    vehicle = SimVehicle(spec, soc_pct=40.0)
    most = acceptable_current_a(vehicle, 5.0)
    share = 0.5 * most * voltage_at_v(vehicle, most)
    amps = current_for_power_a(vehicle, share, most)
    assert amps * voltage_at_v(vehicle, amps) == pytest.approx(share, abs=1e-3)
    assert amps > 0.5 * most  # the voltage falls with the current


def test_bare_packs_near_full_take_more_than_vehicle_regulated_ones() -> None:
    spec = next(s for s in load_catalog() if s.id == "ebike-36v-500wh")
    regulated = SimVehicle(spec, soc_pct=97.0, seed=1)
    bare = SimVehicle(spec, soc_pct=97.0, seed=1, on_board_controller=False)
    assert acceptable_current_a(bare, 5.0, 84.0) > acceptable_current_a(regulated, 5.0, 84.0)
    full = replace(two_bikes(), end_s=600, arrivals=tuple(
        replace(a, soc_pct=95.0) for a in two_bikes().arrivals
    ))  # fmt: skip
    assert physical_bound(full).policy == "bound, stages"
    regulated_wh = physical_bound(replace(full, stage="")).summary()["energy_wh"]
    assert physical_bound(full).summary()["energy_wh"] > regulated_wh
