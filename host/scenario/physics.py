"""What a simulated vehicle could take right now, for demand figures and the physical bound.

A pack takes the least of its charger's limit, its BMS's limit and, near full, the current that
holds its highest cell at the constant-voltage setpoint. :class:`~host.vehicle.model.SimVehicle`
computes the last one inside its charge controller; these functions ask it the same question
without changing its state. A bare pack (``on_board_controller=False``, behind a station's CC/CV
stage) is held by the stage instead: near full it takes the current that brings its terminals,
the mean cell, to the stage's voltage limit (the pack's vmax, never above the port's limit).
"""

from __future__ import annotations

from host.vehicle.model import SimVehicle


def acceptable_current_a(
    vehicle: SimVehicle, port_limit_a: float = float("inf"), port_limit_v: float = float("inf")
) -> float:
    """The current the vehicle would draw now if it were granted as much as it wants."""
    wants = min(vehicle.wants_current_a, port_limit_a)
    if wants <= 0.0:
        return 0.0
    if not vehicle.on_board_controller:
        return max(0.0, vehicle._current_within(headroom_v(vehicle, port_limit_v), wants))
    return max(0.0, vehicle._cv_limit(wants))


def stage_voltage_v(vehicle: SimVehicle, port_limit_v: float = float("inf")) -> float:
    """The voltage limit a station's stage holds for this pack (firmware/station/stage.py)."""
    return min(vehicle.spec.v_max, port_limit_v)


def headroom_v(vehicle: SimVehicle, port_limit_v: float) -> float:
    """Per cell, how far the stage's voltage limit lies above the pack's open-circuit voltage."""
    return stage_voltage_v(vehicle, port_limit_v) / vehicle.spec.cells_series - vehicle._ocv()


def voltage_at_v(vehicle: SimVehicle, current_a: float) -> float:
    """Terminal voltage of the pack while charging at ``current_a``."""
    per_cell = vehicle._ocv() + vehicle._overpotential(current_a)
    return per_cell * vehicle.spec.cells_series


def acceptable_power_w(
    vehicle: SimVehicle, port_limit_a: float = float("inf"), port_limit_v: float = float("inf")
) -> float:
    amps = acceptable_current_a(vehicle, port_limit_a, port_limit_v)
    return amps * voltage_at_v(vehicle, amps) if amps > 0 else 0.0


def delivered_power_w(vehicle: SimVehicle) -> float:
    """What flows into the pack now."""
    return vehicle.terminal_voltage_v * vehicle.current_a if vehicle.current_a > 0 else 0.0


def current_for_power_a(vehicle: SimVehicle, power_w: float, ceiling_a: float) -> float:
    """The current, up to ``ceiling_a``, at which the pack takes ``power_w``: its voltage falls
    with its current, so a share of the power needs more than the same share of the current."""
    if power_w <= 0.0 or ceiling_a <= 0.0:
        return 0.0
    low, high = 0.0, ceiling_a
    for _ in range(30):
        mid = (low + high) / 2
        if mid * voltage_at_v(vehicle, mid) <= power_w:
            low = mid
        else:
            high = mid
    return low
