"""What a simulated vehicle could take right now, for demand figures and the physical bound.

A pack takes the least of its charger's limit, its BMS's limit and, near full, the current that
holds its highest cell at the constant-voltage setpoint. :class:`~host.vehicle.model.SimVehicle`
computes the last one inside its charge controller; these functions ask it the same question
without changing its state.
"""

from __future__ import annotations

from host.vehicle.model import SimVehicle


def acceptable_current_a(vehicle: SimVehicle, port_limit_a: float = float("inf")) -> float:
    """The current the vehicle would draw now if it were granted as much as it wants."""
    wants = min(vehicle.wants_current_a, port_limit_a)
    if wants <= 0.0:
        return 0.0
    return max(0.0, vehicle._cv_limit(wants))


def voltage_at_v(vehicle: SimVehicle, current_a: float) -> float:
    """Terminal voltage of the pack while charging at ``current_a``."""
    per_cell = vehicle._ocv() + vehicle._overpotential(current_a)
    return per_cell * vehicle.spec.cells_series


def acceptable_power_w(vehicle: SimVehicle, port_limit_a: float = float("inf")) -> float:
    amps = acceptable_current_a(vehicle, port_limit_a)
    return amps * voltage_at_v(vehicle, amps) if amps > 0 else 0.0


def delivered_power_w(vehicle: SimVehicle) -> float:
    """What flows into the pack now."""
    return vehicle.terminal_voltage_v * vehicle.current_a if vehicle.current_a > 0 else 0.0
