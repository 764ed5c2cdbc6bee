"""The simulated vehicle on its own: charge curve, heat, temperature window, grants, faults.

These drive :class:`SimVehicle` directly with a fixed grant in explicit time steps (no station,
no clock), so a whole charge from empty to full takes a fraction of a second.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import pytest

from firmware.pevlink import Battery, decode, encode
from firmware.pevlink.timers import I_BREAK_A, T_RAMP, T_SETTLE
from host.vehicle.agent import battery_message
from host.vehicle.battery import CELL_LIMITS, ocv_per_cell, polarization_v
from host.vehicle.catalog import find
from host.vehicle.faults import FaultKind
from host.vehicle.model import GRANT_SETTLE_S, BmsFlags, SimVehicle
from host.vehicle.spec import VehicleSpec, VehicleState

NMC_BIKE = "ebike-36v-500wh"  # 10S4P NMC, 13.4 Ah, 4 A (0.30C), cut-off 0.67 A (C/20)
LFP_BIKE = "ebike-48v-lfp"  # 16S LFP, 15 Ah, 5 A (0.33C), cut-off 0.75 A (C/20)


@dataclass
class Charge:
    """What happened during one charge at a fixed grant."""

    vehicle: SimVehicle
    cv_soc: float | None = None
    full_current_a: float | None = None
    full_after_s: float | None = None
    cv_currents: list[float] = field(default_factory=list)
    cv_voltages: list[float] = field(default_factory=list)
    cv_cell_max: list[float] = field(default_factory=list)
    cc_currents: list[float] = field(default_factory=list)
    max_temperature_c: float = -273.0


def charge(
    spec: VehicleSpec, grant_a: float, soc: float = 0.0, dt: float = 1.0, limit_s: float = 30 * 3600
) -> Charge:
    vehicle = SimVehicle(spec, soc_pct=soc, seed=1)
    vehicle.set_grant(grant_a)
    out = Charge(vehicle)
    t = 0.0
    while vehicle.state is not VehicleState.FULL and t < limit_s:
        vehicle.advance(dt, supply_closed=True)
        t += dt
        out.max_temperature_c = max(out.max_temperature_c, vehicle.temperature_c)
        if vehicle.state is VehicleState.CHARGING_CV:
            if out.cv_soc is None:
                out.cv_soc = vehicle.soc_pct
            out.cv_currents.append(vehicle.current_a)
            out.cv_voltages.append(vehicle.terminal_voltage_v)
            out.cv_cell_max.append(vehicle.cell_max_v)
        elif vehicle.state is VehicleState.CHARGING_CC and t > 1.0:
            out.cc_currents.append(vehicle.current_a)
    if vehicle.state is VehicleState.FULL:
        out.full_current_a = vehicle.current_a
        out.full_after_s = t
    return out


def at_rate(vehicle_id: str, c_rate: float) -> VehicleSpec:
    """The catalog vehicle with a charge controller allowed ``c_rate`` (the station grants it)."""
    spec = find(vehicle_id)
    return replace(spec, i_max=c_rate * spec.capacity_ah)


# --- the charge curve ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vehicle_id", "low", "high"),
    [
        # NMC: constant voltage from 70-85 % depending on the rate (0.30C here, 0.58C for XR).
        (NMC_BIKE, 75.0, 85.0),
        ("onewheel-xr", 70.0, 78.0),
        ("kids-scooter-24v", 75.0, 85.0),
        # LFP: the flat plateau keeps the cell below 3.65 V until the steep end of the curve, so
        # constant voltage begins later than on NMC at the same rate.
        (LFP_BIKE, 88.0, 97.0),
        ("eskate-lfp-99wh", 85.0, 95.0),
    ],
)
def test_constant_voltage_begins_at_the_expected_state_of_charge(
    vehicle_id: str, low: float, high: float
) -> None:
    spec = find(vehicle_id)
    result = charge(spec, spec.i_max)
    assert result.cv_soc is not None
    assert low <= result.cv_soc <= high
    # Before that, constant current at the vehicle's own limit (the grant is not the limit here).
    assert result.cc_currents
    assert min(result.cc_currents) == pytest.approx(spec.i_max, rel=1e-3)


def test_constant_voltage_begins_earlier_at_a_higher_charge_rate() -> None:
    onsets = []
    for c_rate in (0.1, 0.2, 1 / 3, 0.5):
        result = charge(at_rate(NMC_BIKE, c_rate), grant_a=100.0, dt=2.0)
        assert result.cv_soc is not None
        onsets.append(result.cv_soc)
    assert onsets == sorted(onsets, reverse=True)
    assert onsets[0] > 85.0  # a slow charge stays in constant current almost to the end
    assert 70.0 <= onsets[-1] <= 80.0  # near 70-80 % at C/2


def test_lfp_enters_constant_voltage_later_than_nmc_at_the_same_rate() -> None:
    nmc = charge(at_rate(NMC_BIKE, 0.3), grant_a=100.0, dt=2.0)
    lfp = charge(at_rate(LFP_BIKE, 0.3), grant_a=100.0, dt=2.0)
    assert nmc.cv_soc is not None and lfp.cv_soc is not None
    assert lfp.cv_soc > nmc.cv_soc + 5.0


@pytest.mark.parametrize("vehicle_id", [NMC_BIKE, LFP_BIKE])
def test_current_tapers_at_the_full_voltage_and_the_charge_ends_at_the_cut_off(
    vehicle_id: str,
) -> None:
    spec = find(vehicle_id)
    result = charge(spec, spec.i_max)
    vehicle = result.vehicle
    assert vehicle.state is VehicleState.FULL
    # The cut-off lies between C/20 and C/10, where a charge ends at 95-99 %.
    assert spec.capacity_ah / 20 - 1e-6 <= spec.cutoff_a <= spec.capacity_ah / 10
    # Constant voltage: the highest cell is held at the chemistry's setpoint (4.20 / 3.65 V), so
    # the pack sits at, never above, its full voltage while the current falls.
    assert len(result.cv_currents) > 100
    cv_cell = CELL_LIMITS[spec.chemistry][0]
    assert all(abs(v - cv_cell) <= 0.005 for v in result.cv_cell_max[10:])
    assert max(result.cv_voltages) <= spec.v_max * 1.001
    assert min(result.cv_voltages[10:]) >= spec.v_max * 0.98
    currents = result.cv_currents
    assert all(later <= earlier + 1e-3 for earlier, later in itertools.pairwise(currents))
    assert result.cv_currents[0] > 0.9 * spec.i_max
    # It ends when the current has fallen to the cut-off, not before.
    assert result.full_current_a is not None
    assert 0.9 * spec.cutoff_a <= result.full_current_a <= spec.cutoff_a
    assert min(result.cv_currents[:-1]) > spec.cutoff_a
    assert 95.0 <= vehicle.soc_pct <= 99.5
    # Full: the BMS says so, wants nothing more, and the current falls to zero.
    assert BmsFlags.FULL in vehicle.bms_flags
    assert vehicle.wants_current_a == 0.0
    for _ in range(10):
        vehicle.advance(0.1, supply_closed=True)
    assert vehicle.current_a == 0.0
    assert vehicle.state is VehicleState.FULL


@pytest.mark.parametrize("vehicle_id", [NMC_BIKE, "scooter-ninebot-max", LFP_BIKE])
def test_energy_from_empty_to_full_matches_the_capacity(vehicle_id: str) -> None:
    spec = find(vehicle_id)
    result = charge(spec, spec.i_max)
    assert result.vehicle.state is VehicleState.FULL
    assert result.vehicle.energy_in_wh == pytest.approx(spec.capacity_wh, rel=0.10)
    # ...and the time it took is the capacity at the charger's current, plus the taper.
    assert result.full_after_s is not None
    hours = result.full_after_s / 3600
    assert spec.capacity_ah / spec.i_max * 0.9 <= hours <= spec.capacity_ah / spec.i_max * 1.3


def test_the_bosch_class_pack_charges_in_about_the_time_its_maker_quotes() -> None:
    """Bosch quotes about 4.5 h for the PowerPack 500 on its 4 A charger."""
    result = charge(find(NMC_BIKE), 4.0)
    assert result.full_after_s is not None
    assert 3.5 <= result.full_after_s / 3600 <= 4.8


def test_ocv_tables_rise_from_empty_to_full_at_the_chemistry_limits() -> None:
    for chemistry in ("NMC", "LFP"):
        cv_cell, _, _ = CELL_LIMITS[chemistry]
        volts = [ocv_per_cell(chemistry, soc) for soc in range(0, 101)]
        assert volts == sorted(volts)
        assert volts[-1] == pytest.approx(cv_cell)
    # LFP's plateau: 20 % to 80 % spans only about 0.1 V; NMC's about 0.4 V.
    assert ocv_per_cell("LFP", 80) - ocv_per_cell("LFP", 20) < 0.15
    assert ocv_per_cell("NMC", 80) - ocv_per_cell("NMC", 20) > 0.35
    assert polarization_v(0.0) == 0.0 and polarization_v(1.0) > polarization_v(0.3) > 0


# --- heat ----------------------------------------------------------------------------------------


def test_the_pack_warms_under_current_and_cools_back_to_ambient_at_rest() -> None:
    vehicle = SimVehicle(find(NMC_BIKE), soc_pct=20.0, temperature_c=25.0, ambient_c=25.0)
    vehicle.set_grant(4.0)
    for _ in range(1800):
        vehicle.advance(1.0, supply_closed=True)
    warmed = vehicle.temperature_c
    assert 26.0 < warmed < 35.0  # half an hour at 0.3C warms the pack by a few degrees
    for _ in range(4 * 3600):
        vehicle.advance(1.0, supply_closed=False)
    assert vehicle.current_a == 0.0
    assert vehicle.temperature_c < warmed
    assert vehicle.temperature_c == pytest.approx(25.0, abs=0.2)


def test_more_current_makes_more_heat() -> None:
    rises = []
    for grant in (1.0, 2.0, 4.0):
        vehicle = SimVehicle(find(NMC_BIKE), soc_pct=20.0)
        vehicle.set_grant(grant)
        for _ in range(600):
            vehicle.advance(1.0, supply_closed=True)
        rises.append(vehicle.temperature_c - 25.0)
    assert 0 < rises[0] < rises[1] < rises[2]


def test_a_warm_pack_at_rest_cools_toward_a_cold_ambient() -> None:
    vehicle = SimVehicle(find(NMC_BIKE), soc_pct=50.0, temperature_c=40.0, ambient_c=10.0)
    previous = vehicle.temperature_c
    for _ in range(6):
        for _ in range(1800):
            vehicle.advance(1.0, supply_closed=False)
        assert vehicle.temperature_c < previous
        previous = vehicle.temperature_c
    assert vehicle.temperature_c == pytest.approx(10.0, abs=1.0)


@pytest.mark.parametrize(
    ("temperature_c", "flag"),
    [(-5.0, BmsFlags.UNDER_TEMP), (50.0, BmsFlags.OVER_TEMP)],
    ids=["cold", "hot"],
)
def test_outside_its_temperature_window_the_bms_refuses_to_charge(
    temperature_c: float, flag: BmsFlags
) -> None:
    vehicle = SimVehicle(find(NMC_BIKE), soc_pct=40.0, temperature_c=temperature_c)
    vehicle.ambient_c = temperature_c
    vehicle.set_grant(4.0)
    for _ in range(100):
        vehicle.advance(0.1, supply_closed=True)
    assert vehicle.current_a == 0.0
    assert vehicle.energy_in_wh == 0.0
    assert vehicle.wants_current_a == 0.0
    assert vehicle.state is VehicleState.REFUSED_TEMP
    assert flag in vehicle.bms_flags
    assert BmsFlags.CHARGING not in vehicle.bms_flags


def test_a_pack_warmed_back_into_its_window_charges_again() -> None:
    vehicle = SimVehicle(find(NMC_BIKE), soc_pct=40.0, temperature_c=-3.0, ambient_c=20.0)
    vehicle.set_grant(4.0)
    vehicle.advance(1.0, supply_closed=True)
    assert vehicle.current_a == 0.0
    for _ in range(1800):
        vehicle.advance(1.0, supply_closed=True)
    assert vehicle.in_window and vehicle.current_a > 0.0


@pytest.mark.parametrize(
    ("temperature_c", "c_rate"),
    [(2.0, 0.1), (4.5, 0.1), (5.0, 0.2), (10.0, 0.2), (14.5, 0.2)],
)
def test_in_the_cold_the_bms_derates_the_current(temperature_c: float, c_rate: float) -> None:
    """0.1C at 0-5 °C and 0.2C at 5-15 °C, as Li-ion cell datasheets ask."""
    spec = find(NMC_BIKE)
    vehicle = SimVehicle(spec, soc_pct=30.0, temperature_c=temperature_c, ambient_c=temperature_c)
    vehicle.set_grant(spec.i_max)
    for _ in range(20):
        vehicle.advance(0.1, supply_closed=True)
    expected = c_rate * spec.capacity_ah
    assert expected < spec.i_max
    assert vehicle.current_a == pytest.approx(expected, rel=0.01)
    assert vehicle.wants_current_a == pytest.approx(expected)
    assert BmsFlags.DERATED in vehicle.bms_flags


def test_at_room_temperature_there_is_no_derating() -> None:
    spec = find(NMC_BIKE)
    vehicle = SimVehicle(spec, soc_pct=30.0, temperature_c=15.0, ambient_c=15.0)
    vehicle.set_grant(spec.i_max)
    for _ in range(20):
        vehicle.advance(0.1, supply_closed=True)
    assert vehicle.current_a == pytest.approx(spec.i_max, rel=0.01)
    assert BmsFlags.DERATED not in vehicle.bms_flags


def test_cold_derating_never_raises_a_small_packs_limit() -> None:
    spec = find("kids-scooter-24v")  # 5 Ah: 0.2C is 1.0 A, below its own 1.5 A
    vehicle = SimVehicle(spec, soc_pct=30.0, temperature_c=10.0, ambient_c=10.0)
    assert vehicle.bms_limit_a() == pytest.approx(1.0)
    spec = find("ebike-48v-lfp")  # 15 Ah: 0.2C is 3.0 A, below 5 A
    vehicle = SimVehicle(spec, soc_pct=30.0, temperature_c=10.0, ambient_c=10.0)
    assert vehicle.bms_limit_a() == pytest.approx(3.0)


# --- grants --------------------------------------------------------------------------------------


def test_the_vehicles_settle_time_is_the_specs() -> None:
    assert GRANT_SETTLE_S == T_SETTLE


def charging_at(vehicle_id: str, amps: float) -> SimVehicle:
    vehicle = SimVehicle(find(vehicle_id), soc_pct=40.0)
    vehicle.set_grant(amps)
    for _ in range(50):
        vehicle.advance(0.1, supply_closed=True)
    assert vehicle.current_a == pytest.approx(amps, rel=0.01)
    return vehicle


@pytest.mark.parametrize("new_grant", [2.0, 1.0, 0.5])
def test_a_lowered_grant_is_obeyed_within_the_settle_time(new_grant: float) -> None:
    vehicle = charging_at(NMC_BIKE, 4.0)
    vehicle.set_grant(new_grant)
    elapsed = 0.0
    dt = 0.01
    while elapsed < GRANT_SETTLE_S - 1e-9:
        vehicle.advance(dt, supply_closed=True)
        elapsed += dt
    assert vehicle.current_a <= new_grant + 0.01
    # ...and it stays there.
    for _ in range(100):
        vehicle.advance(dt, supply_closed=True)
        assert vehicle.current_a <= new_grant + 0.01


def test_a_grant_of_zero_ramps_the_current_below_the_break_current_in_time() -> None:
    """After STOP the vehicle has T_RAMP to bring the current under I_BREAK_A."""
    vehicle = charging_at(NMC_BIKE, 4.0)
    vehicle.set_grant(0.0)
    elapsed = 0.0
    while elapsed < T_RAMP - 1e-9:
        vehicle.advance(0.01, supply_closed=True)
        elapsed += 0.01
    assert vehicle.current_a <= I_BREAK_A
    assert vehicle.state is VehicleState.IDLE


def test_a_raised_grant_is_taken_up_to_the_vehicles_own_limit() -> None:
    vehicle = charging_at(NMC_BIKE, 1.0)
    vehicle.set_grant(10.0)
    for _ in range(100):
        vehicle.advance(0.01, supply_closed=True)
    assert vehicle.current_a == pytest.approx(4.0, rel=0.01)


def test_no_current_flows_while_the_supply_is_open() -> None:
    vehicle = charging_at(NMC_BIKE, 4.0)
    vehicle.advance(0.01, supply_closed=False)
    assert vehicle.current_a == 0.0


def test_a_vehicle_granted_less_than_its_cut_off_still_finishes() -> None:
    """Under a short budget the station may grant only the vehicle's minimum current."""
    spec = find(NMC_BIKE)
    assert spec.i_min < spec.cutoff_a
    result = charge(spec, spec.i_min, soc=90.0, dt=5.0, limit_s=12 * 3600)
    assert result.vehicle.state is VehicleState.FULL


# --- determinism ---------------------------------------------------------------------------------


def trajectory(seed: int, steps: int = 3000) -> list[dict[str, object]]:
    vehicle = SimVehicle(find("ebike-52v-14s"), soc_pct=70.0, seed=seed)
    vehicle.set_grant(4.0)
    out = []
    for step in range(steps):
        if step == 1000:
            vehicle.set_grant(2.0)
        vehicle.advance(1.0, supply_closed=True)
        out.append(vehicle.snapshot())
    return out


def test_the_same_seed_gives_the_same_trajectory() -> None:
    assert trajectory(seed=7) == trajectory(seed=7)


def test_a_different_seed_gives_different_cells() -> None:
    first, second = trajectory(seed=7, steps=1), trajectory(seed=8, steps=1)
    assert first[0]["cells_v"] != second[0]["cells_v"]
    a = SimVehicle(find(NMC_BIKE), seed=7)
    b = SimVehicle(find(NMC_BIKE), seed=8)
    # Imbalance is spread around the mean: the pack's own state of charge is unchanged.
    assert a.soc_pct == b.soc_pct
    assert a.terminal_voltage_v == b.terminal_voltage_v


# --- the vehicle's own faults ---------------------------------------------------------------------


def test_a_bms_stop_cuts_the_current_and_stays_stopped() -> None:
    vehicle = charging_at(NMC_BIKE, 4.0)
    vehicle.inject(FaultKind.BMS_STOP)
    for _ in range(int(GRANT_SETTLE_S / 0.01)):
        vehicle.advance(0.01, supply_closed=True)
    assert vehicle.current_a < 0.01
    assert vehicle.state is VehicleState.STOPPED_BY_BMS
    assert BmsFlags.BMS_STOP in vehicle.bms_flags
    for _ in range(100):
        vehicle.advance(1.0, supply_closed=True)
    assert vehicle.current_a == 0.0


def test_a_cell_over_voltage_is_reported_at_once_and_stops_the_charge_after_two_seconds() -> None:
    """As a common scooter BMS does: cell over-voltage held for 2 s opens its charge switch."""
    vehicle = charging_at(NMC_BIKE, 4.0)
    vehicle.inject(FaultKind.CELL_OVER_VOLTAGE)
    vehicle.advance(0.1, supply_closed=True)
    assert BmsFlags.CELL_OV in vehicle.bms_flags
    assert vehicle.cell_max_v > CELL_LIMITS["NMC"][1]
    assert max(vehicle.cell_voltages()) > CELL_LIMITS["NMC"][1]
    assert vehicle.state is not VehicleState.STOPPED_BY_BMS
    for _ in range(25):
        vehicle.advance(0.1, supply_closed=True)
    assert vehicle.state is VehicleState.STOPPED_BY_BMS
    for _ in range(10):
        vehicle.advance(0.1, supply_closed=True)
    assert vehicle.current_a < 0.01


def test_an_over_temperature_makes_the_bms_refuse_current() -> None:
    vehicle = charging_at(NMC_BIKE, 4.0)
    vehicle.inject(FaultKind.OVER_TEMPERATURE)
    for _ in range(50):
        vehicle.advance(0.01, supply_closed=True)
    assert vehicle.temperature_c > vehicle.spec.t_max_c
    assert BmsFlags.OVER_TEMP in vehicle.bms_flags
    assert vehicle.current_a < 0.01


def test_an_overdrawing_vehicle_takes_more_than_its_grant() -> None:
    vehicle = charging_at("eskate-36v-360wh", 2.0)
    vehicle.inject(FaultKind.OVERDRAW)
    for _ in range(50):
        vehicle.advance(0.01, supply_closed=True)
    assert vehicle.current_a > 3.5  # 1.5 × grant + 1 A


def test_a_lying_vehicle_declares_a_smaller_pack_than_it_has() -> None:
    vehicle = SimVehicle(find(NMC_BIKE), soc_pct=50.0)
    honest = vehicle.declared_profile()
    assert honest.v_max == pytest.approx(42.0) and honest.cells_series == 10
    vehicle.inject(FaultKind.LIE_VOLTAGE)
    lie = vehicle.declared_profile()
    assert lie.v_max == pytest.approx(31.5)
    assert lie.v_max < vehicle.terminal_voltage_v  # its real pack is above what it declares


@pytest.mark.parametrize("vehicle_id", ["scooter-xiaomi-m365", "ebike-48v-lfp"])
def test_the_vehicle_declares_where_its_bms_ends_the_charge_unless_it_speaks_1_1(
    vehicle_id: str,
) -> None:
    spec = find(vehicle_id)
    declared = decode(encode(battery_message(SimVehicle(spec, soc_pct=40.0)), 4)).message
    assert isinstance(declared, Battery) and declared.i_end_a == pytest.approx(spec.cutoff_a)
    old = encode(battery_message(SimVehicle(spec, soc_pct=40.0, declares_end=False)), 4)
    assert b"iend" not in old
