"""The sharing policy alone: who gets how much of the budget, and in which order it changes.

Grants are currents; the allocator accounts each at the vehicle's maximum voltage, so "watts"
below always means ``current_a * v_max_v``, the most that grant can ever carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.station.allocator import (
    ROTATION_PERIOD_S,
    Demand,
    Grant,
    SeedPolicy,
    SharingPolicy,
    plan_transition,
    water_fill,
)

EPS_W = 1e-6
PORT_POWER_W = 420.0


def demand(
    port_id: int,
    *,
    v: float = 42.0,
    i_min: float = 0.5,
    i_max: float = 4.0,
    since: float = 0.0,
    charging: bool = False,
    granted: float = 0.0,
    measured: float | None = None,
    **kw: float,
) -> Demand:
    return Demand(
        port_id=port_id,
        v_max_v=v,
        i_min_a=i_min,
        i_max_a=i_max,
        requested_since=since,
        charging=charging,
        granted_a=granted,
        measured_a=measured,
        **kw,  # type: ignore[arg-type]
    )


def watts(grants: Mapping[int, Grant], demands: list[Demand]) -> float:
    v = {d.port_id: d.v_max_v for d in demands}
    return sum(g.current_a * v[pid] for pid, g in grants.items())


def charged(demands: list[Demand], grants: Mapping[int, Grant], draw: float = 1.0) -> list[Demand]:
    """The next round's demands: each admitted vehicle charges and draws ``draw`` of its grant."""
    out = []
    for d in demands:
        amps = grants[d.port_id].current_a
        if amps > 0:
            out.append(replace(d, charging=True, granted_a=amps, measured_a=amps * draw))
        else:
            out.append(replace(d, charging=False, granted_a=0.0, measured_a=None))
    return out


# --- minimums, then max-min fair water-filling ----------------------------------------------------


def test_every_vehicle_gets_its_minimum_then_an_even_share() -> None:
    demands = [demand(1), demand(2, since=1.0)]
    grants = SharingPolicy().allocate(100.0, demands, now=2.0)
    assert grants[1].current_a == grants[2].current_a == pytest.approx(100.0 / 2 / 42.0, abs=0.01)
    assert all(g.current_a >= 0.5 for g in grants.values())
    assert watts(grants, demands) <= 100.0
    assert grants[1].reason == "shared" and "1 other" in grants[1].detail


def test_a_vehicle_whose_limit_is_below_its_share_leaves_the_rest_to_the_others() -> None:
    # Water-filling: the small vehicle is satisfied in full; the two others split what is left
    # above their minimums evenly (in watts, whatever their voltage).
    demands = [demand(1, i_max=1.0), demand(2), demand(3, v=54.6, i_max=3.0)]
    grants = SharingPolicy().allocate(250.0, demands, now=0.0)
    assert grants[1].current_a == pytest.approx(1.0)
    assert grants[1].reason == "capped_by_vehicle"
    floors = {2: 0.5 * 42.0, 3: 0.5 * 54.6}
    extra_w = (250.0 - 42.0 - floors[2] - floors[3]) / 2
    assert grants[2].current_a * 42.0 == pytest.approx(floors[2] + extra_w, abs=0.5)
    assert grants[3].current_a * 54.6 == pytest.approx(floors[3] + extra_w, abs=0.6)
    assert grants[2].reason == grants[3].reason == "shared"
    assert watts(grants, demands) <= 250.0


def test_water_fill_is_max_min_fair() -> None:
    shares = water_fill(300.0, [20.0, 20.0, 20.0], [50.0, 400.0, 400.0])
    assert shares == pytest.approx([50.0, 125.0, 125.0])
    assert water_fill(30.0, [20.0, 5.0], [100.0, 100.0]) == pytest.approx([22.5, 7.5])


def test_a_generous_budget_stops_at_each_vehicles_and_ports_limit() -> None:
    # i_max_a is already the lowest of the vehicle's profile, its request, the port's current and
    # the port's power (PortController.vehicle_max_a); the allocator never goes past it.
    demands = [demand(1, i_max=4.0), demand(2, i_max=2.5, v=84.0), demand(3, i_max=1.5, v=25.2)]
    grants = SharingPolicy().allocate(10_000.0, demands, now=0.0)
    assert {pid: g.current_a for pid, g in grants.items()} == {1: 4.0, 2: 2.5, 3: 1.5}
    assert all(g.reason == "capped_by_vehicle" for g in grants.values())


def test_grants_round_down_never_up() -> None:
    grants = SharingPolicy().allocate(100.0, [demand(1, v=54.6), demand(2, v=54.6)], now=0.0)
    for g in grants.values():
        assert g.current_a * 54.6 <= 50.0
        assert round(g.current_a, 2) == g.current_a


# --- admission and waiting ------------------------------------------------------------------------


def test_vehicles_whose_minimum_does_not_fit_wait_in_arrival_order() -> None:
    # 50 W covers two 21 W minimums, not three.
    demands = [demand(1, since=0.0), demand(2, since=5.0), demand(3, since=2.0)]
    grants = SharingPolicy().allocate(50.0, demands, now=10.0)
    assert grants[1].current_a >= 0.5 and grants[3].current_a >= 0.5
    assert grants[2].current_a == 0.0
    assert grants[2].reason == "waiting_for_power"
    assert "Waiting for power" in grants[2].detail
    assert watts(grants, demands) <= 50.0


def test_a_minimum_larger_than_the_whole_budget_waits() -> None:
    grants = SharingPolicy().allocate(20.0, [demand(1, i_min=0.5)], now=0.0)
    assert grants[1].current_a == 0.0 and grants[1].reason == "waiting_for_power"


def test_a_zero_budget_grants_nothing() -> None:
    demands = [demand(1, charging=True, granted=2.0, measured=2.0), demand(2)]
    grants = SharingPolicy().allocate(0.0, demands, now=0.0)
    assert all(g.current_a == 0.0 for g in grants.values())


def test_the_seed_rule_makes_a_second_vehicle_wait_where_sharing_admits_it() -> None:
    # The seed policy reserves full power (4 A x 42 V = 168 W) per vehicle: on 250 W the second
    # vehicle waits; sharing admits it on its 21 W minimum and splits the budget.
    first = demand(1, charging=True, granted=4.0, measured=4.0)
    second = demand(2, since=1.0)
    seed = SeedPolicy().allocate(250.0, [first, second], now=2.0)
    assert seed[1].current_a == 4.0 and seed[2].current_a == 0.0
    shared = SharingPolicy().allocate(250.0, [first, second], now=2.0)
    assert shared[1].current_a < 4.0 and shared[2].current_a >= 0.5
    assert watts(shared, [first, second]) <= 250.0


# --- rotation -------------------------------------------------------------------------------------


def test_turns_rotate_after_the_rotation_period_when_minimums_do_not_fit() -> None:
    policy = SharingPolicy()
    demands = [demand(1, since=0.0), demand(2, since=1.0), demand(3, since=2.0)]
    grants = policy.allocate(50.0, demands, now=3.0)
    assert grants[3].current_a == 0.0
    # Charging vehicles keep their turn through the period: no churn.
    for now in (10.0, 300.0, ROTATION_PERIOD_S):
        demands = charged(demands, grants)
        grants = policy.allocate(50.0, demands, now=now)
        assert grants[1].current_a > 0 and grants[2].current_a > 0 and grants[3].current_a == 0
    # Once the period is spent the waiting vehicle gets a turn; one charging vehicle yields.
    demands = charged(demands, grants)
    grants = policy.allocate(50.0, demands, now=ROTATION_PERIOD_S + 3.5)
    assert grants[3].current_a >= 0.5
    rotated = [pid for pid in (1, 2) if grants[pid].current_a == 0.0]
    assert len(rotated) == 1
    assert grants[rotated[0]].reason == "rotated_out"
    assert "taking turns" in grants[rotated[0]].detail
    assert watts(grants, demands) <= 50.0


def test_every_vehicle_gets_turns_over_time() -> None:
    policy = SharingPolicy(rotation_period_s=60.0)
    demands = [demand(pid, since=float(pid)) for pid in (1, 2, 3, 4)]
    turns = dict.fromkeys((1, 2, 3, 4), 0.0)
    grants = policy.allocate(50.0, demands, now=5.0)
    for step in range(1, 200):  # 10 s rounds over 33 min
        for pid, g in grants.items():
            if g.current_a > 0:
                turns[pid] += 10.0
        demands = charged(demands, grants)
        grants = policy.allocate(50.0, demands, now=5.0 + 10.0 * step)
        assert watts(grants, demands) <= 50.0
        assert sum(1 for g in grants.values() if g.current_a > 0) == 2
    # Four vehicles, two at a time: each had about half the time.
    for seconds in turns.values():
        assert seconds == pytest.approx(990.0, abs=130.0)


def test_no_rotation_while_every_minimum_fits() -> None:
    policy = SharingPolicy(rotation_period_s=60.0)
    demands = [demand(1), demand(2, since=1.0)]
    grants = policy.allocate(100.0, demands, now=2.0)
    for now in (100.0, 1000.0, 5000.0):
        demands = charged(demands, grants)
        grants = policy.allocate(100.0, demands, now=now)
        assert all(g.current_a >= 0.5 for g in grants.values())


# --- measured headroom ----------------------------------------------------------------------------


def test_a_tapering_vehicles_unused_power_goes_to_the_others() -> None:
    policy = SharingPolicy()
    demands = [demand(1), demand(2, since=1.0)]
    grants = policy.allocate(200.0, demands, now=2.0)
    even = grants[1].current_a
    assert even == pytest.approx(200.0 / 2 / 42.0, abs=0.01)
    # Vehicle 1 is in constant voltage: it draws 1 A of its 2.38 A.
    demands = [
        replace(demands[0], charging=True, granted_a=even, measured_a=1.0),
        replace(demands[1], charging=True, granted_a=even, measured_a=even),
    ]
    grants = policy.allocate(200.0, demands, now=3.0)
    assert grants[1].current_a == pytest.approx(1.0 * 1.15 + 0.1, abs=0.01)
    assert grants[1].reason == "headroom_reuse"
    assert "unused power goes to others" in grants[1].detail
    assert grants[2].current_a > even + 1.0
    assert watts(grants, demands) <= 200.0


def test_a_vehicle_that_needs_more_again_gets_its_share_back() -> None:
    policy = SharingPolicy()
    a = demand(1, charging=True, granted=2.38, measured=1.0)
    b = demand(2, since=1.0, charging=True, granted=2.38, measured=2.38)
    grants = policy.allocate(200.0, [a, b], now=2.0)
    assert grants[1].current_a < 1.5  # headroom given to vehicle 2
    history = [grants[1].current_a]
    now = 3.0
    # Vehicle 1 now draws all it is granted (its cooling pack accepts more): every round its cap
    # grows, and within a few rounds it is back to an even share. No starvation.
    for _ in range(6):
        demands = charged([a, b], grants)
        grants = policy.allocate(200.0, demands, now=now)
        assert watts(grants, demands) <= 200.0
        history.append(grants[1].current_a)
        now += 1.0
    assert history == sorted(history)
    assert history[-1] == pytest.approx(200.0 / 2 / 42.0, abs=0.01)
    assert grants[2].current_a == pytest.approx(history[-1], abs=0.01)


def test_a_vehicle_still_ramping_is_not_read_as_headroom() -> None:
    # The station passes measured = max(measured, grant) during the settle grace; no cap drop.
    policy = SharingPolicy()
    d = [demand(1, charging=True, granted=2.0, measured=2.0), demand(2, since=1.0)]
    grants = policy.allocate(200.0, d, now=1.0)
    assert grants[1].current_a == pytest.approx(grants[2].current_a)


def test_lost_measurements_fall_back_to_every_minimum() -> None:
    demands = [
        demand(1, charging=True, granted=2.0, measured=None),
        demand(2, charging=True, granted=2.0, measured=None, i_min=0.3),
    ]
    grants = SharingPolicy().allocate(600.0, demands, now=0.0)
    assert grants[1].current_a == 0.5 and grants[2].current_a == 0.3
    assert grants[1].reason == "stale_measurements"
    assert "lost its measurements" in grants[1].detail


def test_one_stale_port_keeps_its_grant_but_is_not_grown() -> None:
    policy = SharingPolicy()
    demands = [
        demand(1, charging=True, granted=2.0, measured=1.0),
        demand(2, charging=True, granted=2.0, measured=2.0),
    ]
    grants = policy.allocate(600.0, demands, now=0.0)
    assert grants[1].current_a == pytest.approx(1.25)  # tapering: 1 A x 1.15 + 0.1 A
    # Port 1's sensor reading goes stale: it is assumed to draw its whole grant, and its grant is
    # neither grown (nothing says it could use more) nor cut.
    demands = [replace(demands[0], granted_a=1.25, measured_a=None), demands[1]]
    grants = policy.allocate(600.0, demands, now=1.0)
    assert grants[1].current_a == pytest.approx(1.25)
    assert grants[2].current_a == 4.0


# --- departure time and target state of charge ----------------------------------------------------


def test_a_vehicle_leaving_soon_goes_first_when_minimums_do_not_fit() -> None:
    early = demand(1, since=0.0)
    leaving = demand(
        2, since=50.0, soc_pct=20.0, capacity_wh=500.0, target_soc_pct=80.0, departure_at=1900.0
    )
    grants = SharingPolicy().allocate(30.0, [early, leaving], now=100.0)
    assert grants[2].current_a >= 0.5
    assert grants[1].current_a == 0.0 and grants[1].reason == "waiting_for_power"


def test_the_sooner_and_emptier_vehicle_is_the_more_urgent() -> None:
    # Same battery, same 300 Wh still wanted: the one leaving in 30 min goes before the one
    # leaving in 2 h, although it asked later.
    trip = Demand(1, 42.0, 0.5, 4.0, 0.0, False, 0.0, None, 20.0, 500.0, 80.0, 7300.0)
    later = trip
    sooner = replace(trip, port_id=2, requested_since=5.0, departure_at=1900.0)
    grants = SharingPolicy().allocate(30.0, [later, sooner], now=100.0)
    assert grants[2].current_a > 0 and grants[1].current_a == 0.0


def test_a_vehicle_already_at_its_target_is_not_urgent() -> None:
    early = demand(1, since=0.0)
    done = demand(
        2, since=50.0, soc_pct=85.0, capacity_wh=500.0, target_soc_pct=80.0, departure_at=1900.0
    )
    grants = SharingPolicy().allocate(30.0, [early, done], now=100.0)
    assert grants[1].current_a > 0 and grants[2].current_a == 0.0


# --- reductions before increases ------------------------------------------------------------------


def test_plan_transition_reduces_first_then_increases() -> None:
    v = {1: 42.0, 2: 42.0, 3: 54.6}
    phases = plan_transition(250.0, v, {1: 4.0, 2: 1.0}, {1: 2.0, 2: 2.5, 3: 0.5})
    assert phases == [[(1, 2.0)], [(2, 2.5), (3, 0.5)]]


def test_plan_transition_clips_an_increase_to_the_budget_instead_of_refusing() -> None:
    reductions, increases = plan_transition(100.0, {1: 42.0}, {}, {1: 3.0})
    assert reductions == []
    assert increases == [(1, 2.38)]  # 2.380 A x 42 V = 99.96 W: the most that fits
    assert increases[0][1] * 42.0 <= 100.0


def test_a_budget_cut_below_a_busy_port_still_reduces_the_others() -> None:
    """Port 1 is busy and keeps 4 A (168 W) although the budget fell to 150 W: the round must
    still lower port 2, and raise nothing, where it used to raise and reduce nothing."""
    v = {1: 42.0, 2: 42.0, 3: 42.0}
    reductions, increases = plan_transition(150.0, v, {1: 4.0, 2: 3.0}, {1: 4.0, 2: 1.0, 3: 1.0})
    assert reductions == [(2, 1.0)]
    assert increases == []


# --- properties over random histories -------------------------------------------------------------


@dataclass
class Vehicle:
    v_max: float
    i_min: float
    i_max_vehicle: float
    port_max: float
    since: float
    draw: float = 1.0
    """Fraction of its grant the vehicle draws (1 in constant current, less when tapering)."""
    stale: bool = False
    granted: float = 0.0

    def demand(self, port_id: int) -> Demand:
        i_max = min(self.i_max_vehicle, self.port_max, PORT_POWER_W / self.v_max)
        charging = self.granted > 0
        return Demand(
            port_id=port_id,
            v_max_v=self.v_max,
            i_min_a=min(self.i_min, i_max),
            i_max_a=i_max,
            requested_since=self.since,
            charging=charging,
            granted_a=self.granted,
            measured_a=None if self.stale or not charging else self.granted * self.draw,
        )


Event = tuple[str, int, float, float, float]
"""(kind, port, a, b, c): what a, b and c mean depends on the kind."""

amps = st.integers(min_value=10, max_value=600).map(lambda c: c / 100.0)
ports = st.integers(1, 6)
events = st.lists(
    st.one_of(
        # A vehicle arrives: its maximum voltage, two currents (its minimum and maximum, in either
        # order) and the port's current limit.
        st.tuples(
            st.just("arrive"),
            ports,
            st.sampled_from([25.2, 29.2, 42.0, 54.6, 58.4, 63.0, 84.0]),
            amps,
            amps,
        ),
        st.tuples(st.just("taper"), ports, st.floats(0.0, 1.2), st.just(0.0), st.just(0.0)),
        st.tuples(st.just("stale"), ports, st.sampled_from([0.0, 1.0]), st.just(0.0), st.just(0.0)),
        st.tuples(
            st.sampled_from(["fault", "depart"]), ports, st.just(0.0), st.just(0.0), st.just(0.0)
        ),
        st.tuples(
            st.just("budget"), st.just(0), st.floats(0.0, 1500.0), st.just(0.0), st.just(0.0)
        ),
        st.tuples(
            st.just("wait"),
            st.just(0),
            st.sampled_from([1.0, 30.0, 600.0, 1000.0]),
            st.just(0.0),
            st.just(0.0),
        ),
    ),
    max_size=40,
)
PORT_MAX_A = {1: 5.0, 2: 5.0, 3: 2.0, 4: 10.0, 5: 5.0, 6: 3.0}


def check_transition(
    budget_w: float,
    vehicles: Mapping[int, Vehicle],
    current: dict[int, float],
    target: dict[int, float],
) -> None:
    v = {pid: vehicles[pid].v_max for pid in target}

    def total(state: Mapping[int, float]) -> float:
        return sum(amps * v[pid] for pid, amps in state.items())

    before = total(current)
    reductions, increases = plan_transition(budget_w, v, current, target)
    state = dict(current)
    for pid, amps in reductions:
        assert amps < state.get(pid, 0.0)
        state[pid] = amps
        # A reduction never adds power; from a state within budget it stays within it.
        assert total(state) <= max(before, budget_w) + EPS_W
    assert total(state) <= budget_w + EPS_W
    for pid, amps in increases:
        assert amps > state.get(pid, 0.0)
        state[pid] = amps
        assert total(state) <= budget_w + EPS_W
    assert all(abs(state.get(pid, 0.0) - amps) < 1e-9 for pid, amps in target.items())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start_budget=st.floats(0.0, 1500.0), history=events)
def test_grants_never_exceed_the_budget_or_any_limit(
    start_budget: float, history: list[Event]
) -> None:
    policy = SharingPolicy(rotation_period_s=900.0)
    vehicles: dict[int, Vehicle] = {}
    budget_w = start_budget
    now = 0.0
    for kind, pid, a, b, c in history:
        if kind == "arrive" and pid not in vehicles:
            lo, hi = sorted((b, c))
            vehicles[pid] = Vehicle(a, lo, hi, PORT_MAX_A[pid], now)
        elif kind == "taper" and pid in vehicles:
            vehicles[pid].draw = a
        elif kind == "stale" and pid in vehicles:
            vehicles[pid].stale = a > 0
        elif kind in ("fault", "depart"):
            vehicles.pop(pid, None)  # the relay opens at once: its grant is gone
        elif kind == "budget":
            budget_w = a
        elif kind == "wait":
            now += a
        now += 1.0
        demands = [vehicles[p].demand(p) for p in sorted(vehicles)]
        grants = policy.allocate(budget_w, demands, now)
        assert set(grants) == set(vehicles)
        assert watts(grants, demands) <= budget_w + EPS_W
        for d in demands:
            granted = grants[d.port_id].current_a
            vehicle = vehicles[d.port_id]
            assert granted <= vehicle.i_max_vehicle + 1e-9
            assert granted <= vehicle.port_max + 1e-9
            assert granted * d.v_max_v <= PORT_POWER_W + EPS_W
            assert granted == 0.0 or granted >= d.i_min_a - 1e-9
        current = {p: veh.granted for p, veh in vehicles.items() if veh.granted > 0}
        target = {p: g.current_a for p, g in grants.items()}
        check_transition(budget_w, vehicles, current, target)
        for p, g in grants.items():
            vehicles[p].granted = g.current_a
