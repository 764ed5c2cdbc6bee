"""Measured-voltage accounting behind a CC/CV stage: the grants use the budget fully, and the sum
of measured power exceeds the budget for at most one allocator round while the packs' voltages
rise (docs/power-sharing.md)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.station.allocator import (
    FLOW_TOLERANCE_A,
    HOLD_MARGIN_FRAC,
    RAISE_MARGIN_FRAC,
    Demand,
    SharingPolicy,
    account_voltage,
    plan_transition,
)

ROUND_S = 1.0
STEP_S = 0.1


def test_the_accounted_voltage_is_the_measured_one_plus_the_margin_and_never_above_vmax() -> None:
    assert account_voltage(42.0, 36.0) == 36.3  # 36 + 0.21, up to the 0.1 V step
    assert account_voltage(42.0, 36.0, RAISE_MARGIN_FRAC) == 37.3  # 36 + 1.26
    assert account_voltage(42.0, 41.9) == 42.0
    assert account_voltage(42.0, 44.0) == 42.0
    for measured in (30.0, 33.3, 38.74, 40.0):
        for frac in (HOLD_MARGIN_FRAC, RAISE_MARGIN_FRAC):
            assert account_voltage(42.0, measured, frac) >= measured + frac * 42.0 - 1e-9


def test_a_demand_without_a_measured_voltage_is_counted_at_vmax() -> None:
    demand = Demand(1, 42.0, 0.5, 4.0, 0.0, True, 2.0, 2.0)
    assert demand.volts == demand.raise_volts == 42.0
    assert demand.power_w(3.0) == 126.0


def test_what_flows_is_counted_at_the_hold_margin_and_a_raise_above_it_at_the_raise_margin() -> (
    None
):
    demand = Demand(1, 42.0, 0.5, 4.0, 0.0, True, 2.0, 2.0, measured_v=36.0, flowing_a=2.0)
    held = 2.0 + FLOW_TOLERANCE_A
    assert demand.power_w(1.5) == 1.5 * 36.3
    assert demand.power_w(3.0) == held * 36.3 + (3.0 - held) * 37.3
    for watts in (10.0, 70.0, 74.0, 75.0, 110.0):
        assert demand.power_w(demand.amps_for(watts)) == pytest.approx(watts)


def test_grants_are_whole_stage_steps_and_what_rounding_leaves_goes_to_the_port_holding_it() -> (
    None
):
    def stage(port_id: int, granted: float) -> Demand:
        return Demand(
            port_id, 42.0, 0.5, 4.0, 0.0, True, granted, granted, None, None, None, None, 0,
            measured_v=38.0, flowing_a=granted, step_a=0.1,
        )  # fmt: skip

    demands = [stage(1, 1.8), stage(2, 1.7)]
    grants = SharingPolicy().allocate(136.0, demands, now=0.0)
    amps = [grants[1].current_a, grants[2].current_a]
    assert all(abs(a * 10 - round(a * 10)) < 1e-9 for a in amps)
    assert sum(d.power_w(a) for d, a in zip(demands, amps, strict=True)) <= 136.0
    assert amps == [1.8, 1.7]  # the step goes back to the port that held it, not to port 2
    assert 136.0 - sum(d.power_w(a) for d, a in zip(demands, amps, strict=True)) < 0.1 * 38.3


def test_a_minimum_between_two_stage_steps_is_still_granted_when_only_it_fits() -> None:
    demand = Demand(
        1, 42.0, 0.25, 4.0, 0.0, False, 0.0, None, measured_v=None, flowing_a=None, step_a=0.1
    )
    grants = SharingPolicy().allocate(0.25 * 42.0 + 1.0, [demand], now=0.0)
    assert grants[1].current_a >= 0.25


def test_nothing_is_raised_above_what_flows_while_the_measured_total_is_above_the_budget() -> None:
    over = Demand(1, 42.0, 0.5, 4.0, 0.0, True, 3.0, 3.0, measured_v=40.0, flowing_a=3.0)
    low = Demand(2, 42.0, 0.5, 4.0, 0.0, True, 1.0, 1.0, measured_v=36.0, flowing_a=1.0)
    grants = SharingPolicy().allocate(150.0, [over, low], now=0.0)  # 156 W flow
    assert grants[2].current_a <= 1.0 + FLOW_TOLERANCE_A
    assert grants[1].current_a < 3.0


@dataclass
class Pack:
    """A pack behind an ideal CC/CV stage: OCV rising with charge behind a resistance."""

    v_max: float
    ocv: float
    resistance: float
    rise_v_per_s: float
    current: float = 0.0

    def drive(self, grant: float, dt: float) -> None:
        self.ocv = min(self.v_max, self.ocv + self.rise_v_per_s * dt * (grant > 0))
        headroom = max(0.0, (self.v_max - self.ocv) / self.resistance)
        self.current = min(grant, headroom)

    @property
    def volts(self) -> float:
        return self.ocv + self.current * self.resistance


packs = st.builds(
    Pack,
    v_max=st.sampled_from([25.2, 42.0, 54.6, 58.8]),
    ocv=st.just(0.0),
    resistance=st.floats(0.05, 1.0),
    rise_v_per_s=st.floats(0.0, 0.05),
)
"""Up to 1 ohm: a pack whose IR rise at its grant is far above the raise margin (condition (2)
of docs/power-sharing.md fails), so a raise can overshoot and the next round must not."""


@settings(max_examples=60, deadline=None)
@given(
    fleet=st.lists(packs, min_size=1, max_size=6),
    starts=st.lists(st.floats(0.75, 0.97), min_size=6, max_size=6),
    budget_w=st.floats(150.0, 1500.0),
    rounds=st.integers(5, 40),
    step_a=st.sampled_from([0.0, 0.1]),
    budget_rise=st.floats(1.0, 3.0),
)
def test_measured_power_exceeds_the_budget_for_at_most_one_round(
    fleet: list[Pack],
    starts: list[float],
    budget_w: float,
    rounds: int,
    step_a: float,
    budget_rise: float,
) -> None:
    """Half way the budget rises (a site meter's reading), so every port is raised at once."""
    first_budget_w = budget_w
    for pack, start in zip(fleet, starts, strict=False):
        pack.ocv = pack.v_max * start
    policy = SharingPolicy()
    grants = dict.fromkeys(range(len(fleet)), 0.0)
    over_rounds = 0
    for k in range(rounds):
        now = k * ROUND_S
        budget_w = first_budget_w * (budget_rise if k >= rounds // 2 else 1.0)
        demands = [
            Demand(
                port_id=i,
                v_max_v=p.v_max,
                i_min_a=0.5,
                i_max_a=5.0,
                requested_since=0.0,
                charging=grants[i] > 0,
                granted_a=grants[i],
                measured_a=p.current if grants[i] > 0 else None,
                measured_v=p.volts if grants[i] > 0 else None,
                flowing_a=p.current if grants[i] > 0 else None,
                step_a=step_a,
            )
            for i, p in enumerate(fleet)
        ]
        plan = policy.allocate(budget_w, demands, now)
        target = {i: plan[i].current_a for i in grants}
        volts = {
            d.port_id: d.power_w(target[d.port_id]) / target[d.port_id]
            if target[d.port_id] > 0
            else d.volts
            for d in demands
        }
        accounted = sum(demands[i].power_w(target[i]) for i in grants)
        assert accounted <= budget_w + 0.01 * len(grants)
        for phase in plan_transition(budget_w, volts, grants, target):
            for port_id, amps in phase:
                grants[port_id] = amps
        over = False
        for _ in range(round(ROUND_S / STEP_S)):
            for i, pack in enumerate(fleet):
                pack.drive(grants[i], STEP_S)
            measured = sum(p.volts * p.current for p in fleet)
            over = over or measured > budget_w + 1e-6
        over_rounds = over_rounds + 1 if over else 0
        assert over_rounds <= 1, "measured power above the budget for more than one round"


def test_a_tapering_pack_behind_a_stage_keeps_little_more_than_it_draws() -> None:
    """A bare pack in constant voltage draws less than its grant, and less each round: its cap
    follows it down a stage step or two above what flows (not 15 % + 0.1 A), the rest goes to the
    other port, and the grant does not swing back up while the pack keeps tapering."""
    policy = SharingPolicy()
    budget = 200.0
    taper, other = 2.0, 4.0
    grants = {1: 4.0, 2: 4.0}
    seen: list[float] = []
    for round_ in range(40):
        flow = {1: min(grants[1], taper), 2: min(grants[2], other)}
        demands = [
            Demand(1, 42.0, 0.5, 4.0, 0.0, True, grants[1], flow[1], measured_v=40.0,
                   flowing_a=flow[1], step_a=0.1),
            Demand(2, 42.0, 0.5, 4.0, 0.0, True, grants[2], flow[2], measured_v=38.0,
                   flowing_a=flow[2], step_a=0.1),
        ]  # fmt: skip
        out = policy.allocate(budget, demands, float(round_))
        grants = {p: g.current_a for p, g in out.items()}
        seen.append(grants[1])
        taper -= 0.01
    assert all(later <= earlier + 1e-9 for earlier, later in pairwise(seen[5:]))
    assert 0.05 < seen[-1] - taper <= 0.1 + 0.05 + 0.03 * taper + 0.02 * seen[-1] + 0.1
    assert grants[2] > 2.5  # what the taper leaves goes to the other port
