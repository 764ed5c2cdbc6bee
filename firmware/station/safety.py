"""The safety rules: pure functions of what a port knows, so every fault path is testable alone.

The supervisor (firmware/station/station.py) calls :meth:`PortGuard.check` every poll period with a
fresh sensor reading; a returned :class:`Trip` makes it open the relay at once. Thermal derating
(:func:`thermal_factor`) lowers a grant in steps before the hard stop, with hysteresis.
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware.pevlink.vocabulary import STOP_FLAGS, BmsFlag

_EPS = 1e-6
"""Times add up in floating point: a debounce of 0.2 s must expire after four 50 ms polls."""


def debounce(
    since: float | None, active: bool, now: float, hold_s: float
) -> tuple[float | None, bool]:
    """One debounce for every rule: (when the condition began, whether it has held ``hold_s``).

    The start time is forgotten as soon as the condition clears.
    """
    if not active:
        return None, False
    if since is None:
        since = now
    return since, now - since >= hold_s - _EPS


@dataclass(frozen=True, slots=True)
class SafetyConfig:
    overcurrent_margin_a: float = 0.2
    overcurrent_margin_frac: float = 0.10
    overcurrent_debounce_s: float = 0.2
    hard_current_factor: float = 1.25
    overvoltage_margin_v: float = 0.5
    overvoltage_margin_frac: float = 0.02
    verify_margin_v: float = 1.0
    verify_margin_frac: float = 0.03
    disconnect_current_a: float = 0.05
    disconnect_debounce_s: float = 0.5
    mismatch_ohm: float = 0.15
    """Cable and contact resistance allowed between the port and the pack, under current."""
    mismatch_debounce_s: float = 2.0
    """Telemetry comes once a second: a disagreement must outlast two reports."""
    thermal_derate_start_c: float = 5.0
    """Derating begins this far below the top of the vehicle's charge window."""
    thermal_hysteresis_c: float = 2.0


@dataclass(frozen=True, slots=True)
class Trip:
    """A reason to open the relay now. ``code`` is a PEV Link fault code."""

    code: str
    text: str


@dataclass(frozen=True, slots=True)
class Limits:
    """What the live session allows on this port."""

    grant_a: float
    port_max_a: float
    v_max_v: float
    v_min_v: float
    t_min_c: float
    t_max_c: float


@dataclass(slots=True)
class GuardState:
    over_since: float | None = None
    vanished_since: float | None = None
    mismatch_since: float | None = None


def overcurrent_threshold(cfg: SafetyConfig, grant_a: float) -> float:
    return grant_a + max(cfg.overcurrent_margin_a, cfg.overcurrent_margin_frac * grant_a)


def check_overcurrent(
    cfg: SafetyConfig, state: GuardState, limits: Limits, current_a: float, now: float
) -> Trip | None:
    if current_a > limits.port_max_a * cfg.hard_current_factor:
        return Trip(
            "overcurrent",
            f"Current {current_a:.2f} A is far above the port's {limits.port_max_a:.1f} A limit",
        )
    over = current_a > overcurrent_threshold(cfg, limits.grant_a)
    state.over_since, held = debounce(state.over_since, over, now, cfg.overcurrent_debounce_s)
    if held:
        return Trip(
            "overcurrent",
            f"The vehicle drew {current_a:.2f} A, more than the {limits.grant_a:.2f} A granted",
        )
    return None


def check_overvoltage(cfg: SafetyConfig, limits: Limits, voltage_v: float) -> Trip | None:
    margin = max(cfg.overvoltage_margin_v, cfg.overvoltage_margin_frac * limits.v_max_v)
    if voltage_v > limits.v_max_v + margin:
        return Trip(
            "overvoltage",
            f"Port voltage {voltage_v:.1f} V is above the battery's {limits.v_max_v:.1f} V maximum",
        )
    return None


def check_temperature(limits: Limits, temperature_c: float) -> Trip | None:
    if temperature_c > limits.t_max_c:
        return Trip(
            "overtemp",
            f"Battery at {temperature_c:.0f} °C, above its {limits.t_max_c:.0f} °C charging limit",
        )
    if temperature_c < limits.t_min_c:
        return Trip(
            "undertemp",
            f"Battery at {temperature_c:.0f} °C, below its {limits.t_min_c:.0f} °C charging limit",
        )
    return None


_STOP_MASK = int(STOP_FLAGS)
"""The stop flags as a plain int: the test on every pass is one ``&``, not an enum built twice."""


def check_vehicle_flags(flags: int) -> Trip | None:
    if not flags & _STOP_MASK:
        return None
    bad = BmsFlag(flags) & STOP_FLAGS
    if bad & BmsFlag.OVER_TEMP:
        return Trip("overtemp", "The vehicle's battery reports it is too hot")
    if bad & BmsFlag.UNDER_TEMP:
        return Trip("undertemp", "The vehicle's battery reports it is too cold")
    if bad & BmsFlag.CELL_OV:
        return Trip("cellov", "The vehicle's battery reports a cell over its maximum voltage")
    return Trip("bms", "The vehicle's battery management system stopped the charge")


def check_disconnect(
    cfg: SafetyConfig,
    state: GuardState,
    measured_a: float,
    vehicle_says_charging: bool,
    now: float,
) -> Trip | None:
    """Current vanished while the vehicle still reports charging: a cable or contact opened."""
    vanished = vehicle_says_charging and measured_a < cfg.disconnect_current_a
    state.vanished_since, held = debounce(
        state.vanished_since, vanished, now, cfg.disconnect_debounce_s
    )
    if held:
        return Trip("disconnect", "The charging current stopped: the cable may be unplugged")
    return None


def check_reported_voltage(
    cfg: SafetyConfig,
    state: GuardState,
    measured_v: float,
    reported_v: float,
    current_a: float,
    now: float,
) -> Trip | None:
    """While charging, the pack voltage the vehicle reports must follow what the port measures.

    A vehicle that starts lying mid-session (a faulty or tampered BMS) is caught here, not only at
    the start check; the cable's drop under current is allowed for.
    """
    cable_drop_v = cfg.mismatch_ohm * max(0.0, current_a)
    mismatched = not voltage_matches(cfg, measured_v, reported_v, cable_drop_v)
    state.mismatch_since, held = debounce(
        state.mismatch_since, mismatched, now, cfg.mismatch_debounce_s
    )
    if held:
        return Trip(
            "mismatch",
            f"The vehicle reports {reported_v:.1f} V but the port measures {measured_v:.1f} V: "
            "its battery data cannot be trusted",
        )
    return None


def voltage_matches(
    cfg: SafetyConfig, measured_v: float, declared_v: float, extra_margin_v: float = 0.0
) -> bool:
    margin = max(cfg.verify_margin_v, cfg.verify_margin_frac * declared_v) + extra_margin_v
    return abs(measured_v - declared_v) <= margin


def thermal_factor(
    cfg: SafetyConfig, t_max_c: float, temperature_c: float, previous: float
) -> float:
    """Grant multiplier near the top of the temperature window: 1, 1/2, 1/4, with hysteresis.

    Steps at ``t_max - start`` (half) and ``t_max - start/2`` (quarter), as OpenEVSE stages its
    own temperature; a step is undone only once the battery is ``hysteresis`` below it.
    """
    half_at = t_max_c - cfg.thermal_derate_start_c
    quarter_at = t_max_c - cfg.thermal_derate_start_c / 2
    hyst = cfg.thermal_hysteresis_c
    if temperature_c >= quarter_at:
        return 0.25
    if temperature_c >= half_at:
        return 0.25 if previous <= 0.25 and temperature_c > quarter_at - hyst else 0.5
    if previous < 1.0 and temperature_c > half_at - hyst:
        return previous if previous == 0.5 else 0.5
    return 1.0
