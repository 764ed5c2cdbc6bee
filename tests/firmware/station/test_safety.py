"""The safety rules alone: each fault condition trips, each healthy condition does not."""

from __future__ import annotations

from firmware.pevlink.vocabulary import BmsFlag
from firmware.station.safety import (
    GuardState,
    Limits,
    SafetyConfig,
    check_disconnect,
    check_overcurrent,
    check_overvoltage,
    check_temperature,
    check_vehicle_flags,
    thermal_factor,
    voltage_matches,
)

CFG = SafetyConfig()
LIMITS = Limits(grant_a=2.0, port_max_a=5.0, v_max_v=42.0, v_min_v=30.0, t_min_c=0.0, t_max_c=45.0)


def test_overcurrent_is_debounced_then_trips() -> None:
    state = GuardState()
    assert check_overcurrent(CFG, state, LIMITS, 2.5, now=0.0) is None
    assert check_overcurrent(CFG, state, LIMITS, 2.5, now=0.1) is None
    trip = check_overcurrent(CFG, state, LIMITS, 2.5, now=0.2)
    assert trip is not None and trip.code == "overcurrent"
    assert "2.00 A granted" in trip.text


def test_overcurrent_within_tolerance_never_trips() -> None:
    state = GuardState()
    for step in range(100):
        assert check_overcurrent(CFG, state, LIMITS, 2.19, now=step * 0.05) is None


def test_a_spike_that_ends_before_the_debounce_resets() -> None:
    state = GuardState()
    assert check_overcurrent(CFG, state, LIMITS, 3.0, now=0.0) is None
    assert check_overcurrent(CFG, state, LIMITS, 1.0, now=0.1) is None
    assert check_overcurrent(CFG, state, LIMITS, 3.0, now=0.25) is None


def test_far_above_the_port_limit_trips_at_once() -> None:
    trip = check_overcurrent(CFG, GuardState(), LIMITS, 7.0, now=0.0)
    assert trip is not None and trip.code == "overcurrent"


def test_overvoltage() -> None:
    assert check_overvoltage(CFG, LIMITS, 42.5) is None
    trip = check_overvoltage(CFG, LIMITS, 43.0)
    assert trip is not None and trip.code == "overvoltage"


def test_temperature_window() -> None:
    assert check_temperature(LIMITS, 30.0) is None
    hot = check_temperature(LIMITS, 46.0)
    cold = check_temperature(LIMITS, -1.0)
    assert hot is not None and hot.code == "overtemp" and "46" in hot.text
    assert cold is not None and cold.code == "undertemp"


def test_vehicle_flags_that_stop() -> None:
    assert check_vehicle_flags(int(BmsFlag.CHARGING | BmsFlag.BALANCING)) is None
    for flag, code in [
        (BmsFlag.OVER_TEMP, "overtemp"),
        (BmsFlag.UNDER_TEMP, "undertemp"),
        (BmsFlag.CELL_OV, "cellov"),
        (BmsFlag.BMS_STOP, "bms"),
    ]:
        trip = check_vehicle_flags(int(flag))
        assert trip is not None and trip.code == code


def test_disconnect_needs_the_vehicle_to_say_it_charges() -> None:
    state = GuardState()
    assert check_disconnect(CFG, state, 0.0, vehicle_says_charging=False, now=0.0) is None
    assert check_disconnect(CFG, state, 0.0, vehicle_says_charging=False, now=5.0) is None
    assert check_disconnect(CFG, state, 0.0, vehicle_says_charging=True, now=5.0) is None
    trip = check_disconnect(CFG, state, 0.0, vehicle_says_charging=True, now=5.5)
    assert trip is not None and trip.code == "disconnect"


def test_voltage_match_tolerance() -> None:
    assert voltage_matches(CFG, 40.0, 40.9)
    assert not voltage_matches(CFG, 40.0, 42.0)
    assert voltage_matches(CFG, 80.0, 82.3)  # 3 % of 82 V
    assert not voltage_matches(CFG, 48.0, 36.0)


def test_thermal_derating_steps_down_and_back_with_hysteresis() -> None:
    factor = 1.0
    seen = []
    for temp in [30, 39, 40, 41, 42.5, 43, 42, 41, 40, 39.5, 38.5, 37.9, 30]:
        factor = thermal_factor(CFG, 45.0, temp, factor)
        seen.append(factor)
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.5, 0.5, 0.5, 1.0, 1.0]
