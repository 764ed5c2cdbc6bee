"""The headless scenario runner: deterministic, every arrival accounted for, the budget held."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from firmware.pevlink.timers import T_LINK
from hal.sim.memory_cable import memory_cable
from hal.sim.vtime import LoopClock, run_virtual
from host.scenario import OUTCOMES, ScenarioResult, parse_scenario, physical_bound, run_scenario
from host.scenario.bound import STOP_ALLOWANCE_S
from host.scenario.cli import main as scenario_main
from host.scenario.spec import Scenario, ScenarioError


def scenario(
    *,
    seed: int = 11,
    budget_w: float = 250.0,
    count: int = 3,
    vehicles: list[dict[str, Any]] | None = None,
    **station: Any,
) -> Scenario:
    """Two 12-84 V ports and a few nearly full packs: each run is seconds of wall time."""
    table: dict[str, Any] = {
        "name": "test",
        "seed": seed,
        "ports": 2,
        "layout": "ina228",
        "budget_w": budget_w,
        "end_s": 1200,
        "sample_period_s": 5,
        "sensor_range_factor": 1.25,
    }
    table.update(station)
    return parse_scenario(
        {
            "scenario": table,
            "arrivals": {
                "count": count,
                "window_s": 300,
                "soc_pct": [88, 95],
                "temperature_c": [20, 25],
                "stay_s": [300, 600],
                "mix": {"eskate-lfp-99wh": 1, "ebike-36v-500wh": 1, "ebike-48v-13s": 1},
            },
            "vehicle": vehicles or [],
        }
    )


def trace(result: ScenarioResult) -> list[dict[str, Any]]:
    """Everything a run decides, without the wall-clock time it took."""
    out = [asdict(v) for v in result.vehicles]
    out.append({k: v for k, v in result.summary().items() if k != "wall_s"})
    out.append({"samples": [asdict(s) for s in result.samples]})
    return out


def test_the_same_seed_gives_the_same_run() -> None:
    first = run_scenario(scenario(), "sharing")
    second = run_scenario(scenario(), "sharing")
    assert trace(first) == trace(second)
    assert first.outcomes()["full"] + first.outcomes()["left"] == 3
    assert sum(v.energy_in_wh for v in first.vehicles) > 1.0  # something was charged
    other = scenario(seed=12)
    assert [(a.at_s, a.model) for a in other.arrivals] != [
        (a.at_s, a.model) for a in scenario().arrivals
    ]


def test_every_arriving_vehicle_is_charged_or_accounted_for() -> None:
    # Five arrivals for two ports: one pack no port can supply, one vehicle that overdraws, one
    # rider who leaves early, and a time limit that leaves somebody unfinished.
    result = run_scenario(
        scenario(
            count=2,
            end_s=600,
            vehicles=[
                {"at_s": 0, "model": "eunicycle-126v", "soc_pct": 50},
                {
                    "at_s": 10,
                    "model": "ebike-36v-500wh",
                    "soc_pct": 60,
                    "fault": "overdraw",
                    "fault_after_s": 30,
                },
                {"at_s": 20, "model": "ebike-52v-14s", "soc_pct": 40, "stay_s": 200},
            ],
        ),
        "sharing",
    )
    records = result.vehicles
    assert len(records) == 5
    assert all(v.outcome in OUTCOMES for v in records)
    by_model = {v.model: v for v in records}

    refused = by_model["eunicycle-126v"]
    assert refused.outcome == "unsupported" and "126 V" in (refused.end_text or "")
    assert refused.energy_in_wh == 0.0

    overdraw = next(v for v in records if v.model == "ebike-36v-500wh" and v.arrival_s == 10)
    assert overdraw.outcome == "fault" and overdraw.fault_code == "overcurrent"
    assert any(f["code"] == "overcurrent" for f in result.faults)

    early = by_model["ebike-52v-14s"]
    assert early.outcome == "left" and early.energy_in_wh > 0.0
    assert early.left_s is not None and early.left_s < 20 + 200 + 10

    for v in records:
        if v.outcome in ("full", "left") and v.power_on_s is not None:
            # What the station metered matches what went into the pack, within the ramp steps.
            assert v.energy_wh == pytest.approx(v.energy_in_wh, rel=0.05, abs=0.2)
        if v.outcome == "full":
            assert v.time_to_full_s is not None and v.soc_end_pct is not None
            assert v.soc_end_pct > v.soc_arrival_pct
    assert result.outcomes()["unfinished"] >= 1  # the time limit cut someone short
    assert sum(result.outcomes().values()) == len(records)


def test_grants_never_exceed_the_budget_while_vehicles_come_and_go() -> None:
    # Three e-bikes want ~500 W from a 250 W budget; riders leave and others take their ports.
    result = run_scenario(
        scenario(
            count=4,
            budget_w=250.0,
            vehicles=[
                {"at_s": 0, "model": "ebike-52v-14s", "soc_pct": 30, "stay_s": 400},
                {"at_s": 5, "model": "ebike-48v-lfp", "soc_pct": 30, "stay_s": 700},
            ],
        ),
        "sharing",
    )
    assert result.short_fraction() > 0.2  # the budget really was short
    assert result.max_allocated_w <= 250.0 + 1e-6, result.violations
    assert result.budget_violations == 0, result.violations
    assert max(s.delivered_w for s in result.samples) <= 250.0 * 1.05


def test_the_physical_bound_is_above_what_the_station_delivers() -> None:
    plan = scenario(budget_w=200.0, count=2)
    station = run_scenario(plan, "sharing")
    bound = physical_bound(plan)
    assert [v.outcome is not None for v in bound.vehicles] == [True] * 2
    assert sum(v.energy_in_wh for v in bound.vehicles) >= sum(
        v.energy_in_wh for v in station.vehicles
    )


def test_the_memory_cable_takes_the_wire_time_and_a_cut_wire_loses_bytes() -> None:
    async def main() -> tuple[float, bytes, bytes]:
        clock = LoopClock()
        station, vehicle = memory_cable(clock, baud=115200)
        line = b"$N01 HB*0000\r\n"
        await station.write(line)
        got = await vehicle.read(0.05)
        took = clock.monotonic()
        station.connected = False
        await station.write(b"lost")
        station.connected = True
        await station.write(b"kept")
        rest = await vehicle.read(0.05)
        return took, got, rest

    took, got, rest = run_virtual(main())
    assert got == b"$N01 HB*0000\r\n"
    assert took == pytest.approx(len(got) * 10 / 115200)
    assert rest == b"kept"


def test_an_hour_of_station_time_passes_without_waiting() -> None:
    async def main() -> float:
        clock = LoopClock()
        await asyncio.sleep(3600)
        await clock.sleep(0.5)
        return clock.monotonic()

    assert run_virtual(main()) == pytest.approx(3600.5)


def test_a_bad_scenario_file_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[scenario]\nname = "x"\n[arrivals]\ncount = 2\nmix = { "hoverboard" = 1 }\n')
    assert scenario_main([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "hoverboard" in err and "not in the catalog" in err and "\n" not in err
    with pytest.raises(ScenarioError, match="budget_w"):
        parse_scenario({"scenario": {"name": "x", "budget_w": -5}})


def test_the_bound_frees_a_port_only_when_its_rider_unplugs() -> None:
    """A full vehicle's rider comes back at the end of the stay: the next in line waits for that
    under the bound as under the station; the earlier bound gave the port away at once."""
    plan = parse_scenario(
        {
            "scenario": {
                "name": "one-port",
                "seed": 5,
                "ports": 1,
                "layout": "ina228",
                "budget_w": 300,
                "end_s": 1500,
                "sensor_range_factor": 1.25,
            },
            "vehicle": [
                {"at_s": 0, "model": "eskate-lfp-99wh", "soc_pct": 97, "stay_s": 600},
                {"at_s": 10, "model": "ebike-36v-500wh", "soc_pct": 50, "stay_s": 1200},
            ],
        }
    )
    riders = physical_bound(plan)
    earlier = physical_bound(plan, riders=False)
    station = run_scenario(plan, "sharing")
    first, second = riders.vehicles
    assert first.outcome == "full" and first.ended_s is not None and first.ended_s < 600
    assert first.left_s == pytest.approx(600, abs=2)
    assert second.plugged_s == pytest.approx(600, abs=2)
    assert second.power_on_s == pytest.approx(600 + plan.start_delay_s, abs=2)
    assert earlier.vehicles[1].plugged_s is not None and earlier.vehicles[1].plugged_s < 600
    assert station.vehicles[1].plugged_s is not None and station.vehicles[1].plugged_s >= 600
    assert STOP_ALLOWANCE_S <= T_LINK  # the bound's port is never free later than the station's
    station_wh = sum(v.energy_in_wh for v in station.vehicles)
    riders_wh = sum(v.energy_in_wh for v in riders.vehicles)
    assert station_wh <= riders_wh < sum(v.energy_in_wh for v in earlier.vehicles)
