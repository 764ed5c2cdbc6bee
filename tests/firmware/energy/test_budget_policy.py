"""The budget policy alone: lower at once, raise after the dwell, stale means fallback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from firmware.budget.manager import BudgetManager
from firmware.budget.manual import ManualBudgetFile
from firmware.budget.policy import BudgetPolicy
from firmware.site_config import BudgetConfig, ConfigError, ModbusMeterConfig, parse_budget
from tests.support import make_bench

CONFIG = BudgetConfig(
    source="mqtt",
    max_import_w=3000.0,
    fallback_w=100.0,
    stale_after_s=10.0,
    max_w=600.0,
    raise_dwell_s=30.0,
    smoothing_s=0.0,
)


def test_no_reading_yet_is_fallback_not_zero_load() -> None:
    policy = BudgetPolicy(CONFIG, started_at=0.0)
    decision = policy.decide(0.0)
    assert decision.stale and decision.budget_w == 100.0


def feed(policy: BudgetPolicy, meter_w: float, station_w: float, start: float, end: float) -> float:
    """One reading a second from ``start`` to ``end``; the budget decided at the last one."""
    t = start
    budget = policy.budget_w
    while t <= end + 1e-9:
        policy.observe(meter_w, station_w, t)
        budget = policy.decide(t).budget_w
        t += 1.0
    return budget


def test_rise_lowers_at_once_fall_raises_after_dwell() -> None:
    policy = BudgetPolicy(CONFIG, started_at=0.0)
    # 500 W allowed: above the fallback, so it waits the dwell from the first reading.
    assert feed(policy, 2500.0, 0.0, 1.0, 30.0) == 100.0
    assert feed(policy, 2500.0, 0.0, 31.0, 31.0) == 500.0
    # House load up by 400 W while the station draws 200 W: lowered in the same step.
    policy.observe(2900.0 + 200.0, 200.0, 32.0)
    assert policy.decide(32.0).budget_w == 100.0
    # Load back down: the budget stays until the dwell has passed.
    assert feed(policy, 2600.0, 0.0, 33.0, 62.0) == 100.0
    assert feed(policy, 2600.0, 0.0, 63.0, 63.0) == 400.0


def test_stale_after_silence_and_back() -> None:
    policy = BudgetPolicy(CONFIG, started_at=0.0)
    policy.observe(2800.0, 0.0, 0.0)
    assert policy.decide(0.0).budget_w == 100.0  # 200 W allowed, fallback is lower still
    policy.observe(2950.0, 0.0, 1.0)
    assert policy.decide(1.0).budget_w == 50.0
    assert not policy.decide(11.0).stale
    decision = policy.decide(11.1)
    assert decision.stale and decision.budget_w == 100.0


def test_smoothing_lets_a_fall_in_slowly_and_a_rise_at_once() -> None:
    config = BudgetConfig(
        source="mqtt", max_import_w=3000.0, fallback_w=0.0, max_w=3000.0, raise_dwell_s=0.0,
        smoothing_s=10.0,
    )  # fmt: skip
    policy = BudgetPolicy(config, started_at=0.0)
    policy.observe(2000.0, 0.0, 0.0)
    policy.observe(1000.0, 0.0, 10.0)  # one time constant: 63 % of the way down
    assert policy.load_w == pytest.approx(1000.0 + 1000.0 / 2.718281828, rel=1e-3)
    policy.observe(2500.0, 0.0, 11.0)
    assert policy.load_w == 2500.0


def test_sunspec_counts_production_against_a_base_load() -> None:
    config = BudgetConfig(
        source="modbus", mode="solar", base_load_w=300.0, max_w=2000.0, raise_dwell_s=0.0,
        modbus=ModbusMeterConfig(meter="sunspec", host="127.0.0.1"),
    )  # fmt: skip
    policy = BudgetPolicy(config, started_at=0.0)
    policy.observe(1500.0, 400.0, 0.0)
    assert policy.decide(0.0).budget_w == 1200.0


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"source": "meter"}, "source 'meter' is not one of"),
        ({"source": "modbus", "modbus": {"host": "h"}}, "max_import_w is needed"),
        ({"source": "mqtt", "max_import_w": 3000}, "topic is needed"),
        ({"fallback_w": 900}, "fallback_w must lie between"),
        ({"stale_after_s": 0.5}, "stale_after_s must be above poll_s"),
        ({"source": "modbus", "max_import_w": 1, "modbus": {}}, "give either host"),
        ({"modbus": {"meter": "sdm72"}, "source": "modbus", "max_import_w": 1}, "'sdm72'"),
        ({"poll": 1}, "unknown key 'poll'"),
        ({"fallback_w": "low"}, "fallback_w must be a float"),
    ],
)
def test_budget_configuration_errors_name_the_key(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        parse_budget("site.toml", section, 600.0, None)  # type: ignore[arg-type]
    assert str(raised.value).startswith("site.toml: [budget")


class BrokenMeter:
    """A meter driver that fails in a way nobody planned for."""

    description = "a broken meter"

    async def read_w(self) -> float:
        raise RuntimeError("driver bug")

    async def aclose(self) -> None:
        return None


async def test_an_unexpected_failure_falls_back(tmp_path: Path) -> None:
    async with make_bench(tmp_path, ports=1) as bench:
        manager = BudgetManager(
            CONFIG,
            bench.station,
            bench.clock,
            static_w=600.0,
            manual_file=ManualBudgetFile(tmp_path / "budget.json"),
            meter=BrokenMeter(),
        )
        manager.policy.observe(2500.0, 0.0, 0.0)
        manager.policy.budget_w = 500.0
        manager.apply()
        assert bench.station.budget_w == 500.0
        task = asyncio.create_task(manager.run())
        try:
            await bench.run_for(0.1)
            assert bench.station.budget_w == 100.0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
