"""The fast scenario runner against the reference runner: same arrivals, same outcomes, the same
energy within 1 %, far fewer sensor reads through the drivers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hal.sim.vtime import run_virtual
from host.scenario import parse_scenario, run_scenario
from host.scenario.fast import FastScenarioRun, run_fast_scenario
from host.scenario.result import ScenarioResult
from host.scenario.spec import Scenario


def short_scenario() -> Scenario:
    """Three 12-84 V ports sharing a budget that binds, five vehicles in ten minutes, one of them
    nearly full (it ends full), everyone gone within about twenty-five minutes of simulated time."""
    return parse_scenario(
        {
            "scenario": {
                "name": "fast-vs-reference",
                "seed": 5,
                "ports": 3,
                "layout": "ina228",
                "budget_w": 400,
                "end_s": 2400,
                "sample_period_s": 5,
                "sensor_range_factor": 1.25,
            },
            "arrivals": {
                "count": 4,
                "window_s": 600,
                "soc_pct": [75, 92],
                "temperature_c": [18, 26],
                "stay_s": [600, 900],
                "mix": {
                    "ebike-36v-500wh": 1,
                    "eskate-lfp-99wh": 1,
                    "scooter-xiaomi-m365": 1,
                    "eunicycle-84v": 1,
                },
            },
            "vehicle": [{"at_s": 30, "model": "eskate-lfp-99wh", "soc_pct": 97}],
        }
    )


def _energy(result: ScenarioResult) -> float:
    return sum(v.energy_in_wh for v in result.vehicles)


@pytest.fixture(scope="module")
def both() -> tuple[ScenarioResult, ScenarioResult]:
    plan = short_scenario()
    return run_scenario(plan, "sharing"), run_fast_scenario(plan, "sharing")


def test_the_fast_runner_has_the_reference_runners_outcomes(
    both: tuple[ScenarioResult, ScenarioResult],
) -> None:
    reference, fast = both
    assert [v.outcome for v in fast.vehicles] == [v.outcome for v in reference.vehicles]
    assert [v.port_id for v in fast.vehicles] == [v.port_id for v in reference.vehicles]
    assert "full" in [v.outcome for v in reference.vehicles]
    for ref, new in zip(reference.vehicles, fast.vehicles, strict=True):
        assert (ref.power_on_s is None) == (new.power_on_s is None)
        if ref.power_on_s is not None and new.power_on_s is not None:
            assert new.power_on_s == pytest.approx(ref.power_on_s, abs=2.0)
        assert new.left_s == pytest.approx(ref.left_s, abs=5.0)


def test_the_fast_runner_delivers_the_same_energy_within_one_percent(
    both: tuple[ScenarioResult, ScenarioResult],
) -> None:
    reference, fast = both
    assert _energy(reference) > 20.0
    assert _energy(fast) == pytest.approx(_energy(reference), rel=0.01)
    for ref, new in zip(reference.vehicles, fast.vehicles, strict=True):
        assert new.energy_in_wh == pytest.approx(ref.energy_in_wh, rel=0.02, abs=0.2)
        assert new.energy_wh == pytest.approx(ref.energy_wh, rel=0.02, abs=0.2)
    assert fast.budget_violations == reference.budget_violations == 0


def test_most_sensor_reads_carry_nothing_new_and_skip_the_driver() -> None:
    async def main() -> tuple[int, int]:
        run = FastScenarioRun(short_scenario().with_arrivals(2), "sharing")
        await run.run()
        return run.rig.read_counts()  # type: ignore[attr-defined,no-any-return]

    reads, through_driver = run_virtual(main())
    assert reads > 1000
    assert through_driver < reads / 4


def test_behind_a_stage_on_every_port_the_packs_share_the_budget_at_measured_voltage() -> None:
    plan = replace(short_scenario().with_arrivals(3), stage="elcon", budget_w=250.0, end_s=400.0)
    result = run_fast_scenario(plan, "sharing")
    assert result.faults == []
    assert sum(1 for v in result.vehicles if v.power_on_s is not None) >= 2
    assert _energy(result) > 1.0
    assert result.max_measured_w <= plan.budget_w


def test_without_time_to_full_samples_the_run_is_the_same(
    both: tuple[ScenarioResult, ScenarioResult],
) -> None:
    """The estimates are the runner's instrument, read-only: skipping them changes no outcome."""
    _, fast = both
    quiet = run_fast_scenario(short_scenario(), "sharing", eta=False)
    assert any(v.eta for v in fast.vehicles)
    assert not any(v.eta for v in quiet.vehicles)
    assert [v.outcome for v in quiet.vehicles] == [v.outcome for v in fast.vehicles]
    assert _energy(quiet) == pytest.approx(_energy(fast), rel=1e-3)
