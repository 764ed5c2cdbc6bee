"""A simulated vehicle: its pack, its on-board charge controller, its BMS and its heat.

The charge controller does what real ones do: constant current up to the least of the station's
grant, its own limit and the BMS's derating, then constant voltage at the pack's maximum while the
current tapers, and done at the cut-off current. Physics advances by explicit steps, so it runs as
fast as the caller likes; randomness (cell imbalance) comes from a seeded generator.

Most light-vehicle packs have no such controller: a BMS that can only open its switch, and an
external CC/CV charger. With ``on_board_controller=False`` the pack draws what the supply allows
(:meth:`SimVehicle.supply`: the least of the supply's current limit and the current that brings the
terminals to its voltage limit); the grant is then the station's to enforce, not the vehicle's.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from enum import IntFlag
from typing import Any

from host.vehicle.battery import (
    CELL_LIMITS,
    ThermalModel,
    ocv_per_cell,
    polarization_v,
    resistance_factor,
)
from host.vehicle.faults import FaultKind
from host.vehicle.spec import DeclaredProfile, VehicleSpec, VehicleState

GRANT_SETTLE_S = 0.5
"""PEV Link's T_SETTLE: a vehicle must settle at or under a lowered grant within this time."""
_RESPONSE_TAU_S = 0.08
_STEADY_A = 0.001
"""A current this close to its target has settled (the sensors here resolve about 0.2 mA)."""
_STEADY_MARGIN_V = 0.01
"""Headroom per cell below the constant-voltage setpoint that a steady pack keeps: near the top
of its curve a cell at 1 C rises about 1.5 mV a second, so a long step does not cross into the
taper unseen."""
_STEADY_NEAR_C = 1.0
_TAPER_STEP_S = 1.0
"""The longest step in the taper, where the current falls a few tenths of a mA a second."""
"""A pack this close to a temperature where its BMS changes what it takes is not steady."""
_CELL_OV_DEBOUNCE_S = 2.0
_FULL_CELL_MARGIN_V = 0.03  # how far below its charge voltage a cell still counts as there


class BmsFlags(IntFlag):
    NONE = 0
    CHARGING = 0x0001
    FULL = 0x0002
    OVER_TEMP = 0x0004
    UNDER_TEMP = 0x0008
    CELL_OV = 0x0010
    BMS_STOP = 0x0040
    IMBALANCE = 0x0080
    DERATED = 0x0100


_CHARGING, _FULL = int(BmsFlags.CHARGING), int(BmsFlags.FULL)
_OVER_TEMP, _UNDER_TEMP = int(BmsFlags.OVER_TEMP), int(BmsFlags.UNDER_TEMP)
_CELL_OV, _BMS_STOP = int(BmsFlags.CELL_OV), int(BmsFlags.BMS_STOP)
_IMBALANCE, _DERATED = int(BmsFlags.IMBALANCE), int(BmsFlags.DERATED)


_FLAGS: dict[int, BmsFlags] = {}


@dataclass
class SimVehicle:
    spec: VehicleSpec
    soc_pct: float = 20.0
    temperature_c: float = 25.0
    ambient_c: float = 25.0
    seed: int = 0
    grant_a: float = 0.0
    current_a: float = 0.0
    energy_in_wh: float = 0.0
    state: VehicleState = VehicleState.IDLE
    faults: set[FaultKind] = field(default_factory=set)
    _offsets: list[float] = field(default_factory=list)
    _ov_since: float = 0.0
    _bms_stopped: bool = False
    _full: bool = False
    _cv: bool = False
    _ramping: bool = False
    _target_a: float = 0.0
    """The current the controller aimed at in the last step (what ``steady`` compares with)."""
    _grant_seen: float = 0.0
    """The grant as of the last step."""
    _cv_margin_v: float = math.inf
    _steady_s: float = 0.0
    """What :meth:`steady_for_s` says as of the last step."""
    """How far the highest cell stood below its setpoint at the last step, at its target."""
    _thermal: ThermalModel | None = None
    on_board_controller: bool = True
    """False: a bare pack behind its BMS, charged by the station's CC/CV stage."""
    supply_voltage_limit_v: float = 0.0
    supply_current_limit_a: float = 0.0
    declares_end: bool = True
    """False: firmware of PEV Link 1.1, whose BATT does not say where the charge ends (iend)."""
    _capacity_ah: float = field(default=0.0, init=False, repr=False, compare=False)
    _r_memo: tuple[float, float] = field(default=(math.nan, 0.0), init=False, repr=False)
    """(temperature, one series group's resistance there): asked several times a step."""
    _ocv_memo: dict[float, float] = field(default_factory=dict, init=False, repr=False)
    """Open-circuit voltage per cell by state of charge, for the few states asked about lately."""
    _over_memo: tuple[float, float, float] = field(
        default=(math.nan, math.nan, 0.0), init=False, repr=False
    )
    """(current, resistance, overpotential per cell): the last one asked, asked again soon."""

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        spread = self.spec.imbalance_pct
        # Each series group's state of charge differs a little from the mean: the highest group
        # reaches its voltage limit first and sets the end of the charge.
        self._offsets = [rng.uniform(-spread, spread) for _ in range(self.spec.cells_series)]
        mean = sum(self._offsets) / len(self._offsets)
        self._offsets = [o - mean for o in self._offsets]
        self._max_offset = max(self._offsets)
        self._min_offset = min(self._offsets)
        self._thermal = ThermalModel(self.spec.heat_capacity_j_per_k, self.spec.conductance_w_per_k)
        self._cv_cell = CELL_LIMITS[self.spec.chemistry][0]
        self._capacity_ah = self.spec.capacity_ah

    # --- what the station and the bench see -------------------------------------------------------

    @property
    def _cell_resistance(self) -> float:
        """Ohmic resistance of one series group."""
        temperature, resistance = self._r_memo
        if temperature != self.temperature_c:
            temperature = self.temperature_c
            resistance = (
                self.spec.cell_resistance_ohm
                / self.spec.cells_parallel
                * resistance_factor(temperature)
            )
            self._r_memo = (temperature, resistance)
        return resistance

    def _overpotential(self, current_a: float) -> float:
        """Per-cell voltage above OCV while charging at ``current_a``."""
        if current_a <= 0:
            return 0.0
        resistance = self._cell_resistance
        amps, ohms, volts = self._over_memo
        if amps == current_a and ohms == resistance:
            return volts
        c_rate = current_a / self._capacity_ah
        volts = current_a * resistance + polarization_v(c_rate)
        self._over_memo = (current_a, resistance, volts)
        return volts

    def _ocv(self, offset: float = 0.0) -> float:
        soc = self.soc_pct + offset
        memo = self._ocv_memo
        volts = memo.get(soc)
        if volts is None:
            if len(memo) >= 16:
                memo.clear()
            volts = memo[soc] = ocv_per_cell(self.spec.chemistry, soc)
        return volts

    @property
    def terminal_voltage_v(self) -> float:
        per_cell = self._ocv() + self._overpotential(self.current_a)
        return per_cell * self.spec.cells_series

    def cell_voltages(self) -> list[float]:
        over = self._overpotential(self.current_a)
        volts = [ocv_per_cell(self.spec.chemistry, self.soc_pct + o) + over for o in self._offsets]
        if FaultKind.CELL_OVER_VOLTAGE in self.faults:
            volts[0] = max(volts[0], CELL_LIMITS[self.spec.chemistry][1] + 0.05)
        return volts

    @property
    def cell_min_v(self) -> float:
        return self._ocv(self._min_offset) + self._overpotential(self.current_a)

    @property
    def cell_max_v(self) -> float:
        high = self._ocv(self._max_offset) + self._overpotential(self.current_a)
        if self.faults and FaultKind.CELL_OVER_VOLTAGE in self.faults:
            high = max(high, CELL_LIMITS[self.spec.chemistry][1] + 0.05)
        return high

    def steady_for_s(self) -> float:
        """How long the state of the last step holds within what the sensors resolve, until
        something outside changes it (its grant, its supply, a fault): unbounded for a current
        settled on its target (or off), about 2 mA's worth of change in the taper, 0 while the
        current moves, near the taper's start or a temperature edge of the BMS, or after a stop.
        A world may then step it less often (hal/sim/world.py ``sync_port``)."""
        if self.faults or self.grant_a != self._grant_seen:
            return 0.0
        return self._steady_s

    @property
    def steady(self) -> bool:
        return self.steady_for_s() > 0.0

    def _steadiness(self, before_a: float, dt_s: float) -> float:
        """:meth:`steady_for_s` as of the step just taken (from ``before_a`` over ``dt_s``)."""
        if self._bms_stopped or not self.on_board_controller:
            return 0.0
        t, s = self.temperature_c, self.spec
        for edge in (5.0, 15.0, s.t_min_c, s.t_max_c, s.t_max_c + 5.0):
            if abs(t - edge) < _STEADY_NEAR_C:
                return 0.0  # the BMS's limit changes at these
        if abs(self.current_a - self._target_a) > _STEADY_A or self._ramping:
            return 0.0
        if self._cv:
            # In the taper the current falls slowly: a step may last until it could have moved
            # by the sensor's resolution, and no longer than _TAPER_STEP_S (the end is seen late
            # by at most two such steps).
            slope = abs(self.current_a - before_a) / dt_s
            return _TAPER_STEP_S if slope * _TAPER_STEP_S <= 2 * _STEADY_A else 0.0
        if self._cv_margin_v <= _STEADY_MARGIN_V:
            return 0.0  # the taper is near: it must start when it starts
        return math.inf

    @property
    def in_window(self) -> bool:
        return self.spec.t_min_c <= self.temperature_c <= self.spec.t_max_c

    def bms_limit_a(self) -> float:
        """The BMS's own current limit: nothing outside the window, derated in the cold."""
        if self._bms_stopped or not self.in_window:
            return 0.0
        c = self.spec.capacity_ah
        if self.temperature_c < 5.0:
            return min(self.spec.i_max, 0.1 * c)
        if self.temperature_c < 15.0:
            return min(self.spec.i_max, 0.2 * c)
        return self.spec.i_max

    @property
    def wants_current_a(self) -> float:
        if self._full or self._bms_stopped:
            return 0.0
        return self.bms_limit_a()

    @property
    def bms_flags(self) -> BmsFlags:
        flags = 0  # plain bits, made a BmsFlags once: flag arithmetic is slow
        if self.current_a > 0.05:
            flags |= _CHARGING
        if self._full:
            flags |= _FULL
        if self.temperature_c > self.spec.t_max_c:
            flags |= _OVER_TEMP
        if self.temperature_c < self.spec.t_min_c:
            flags |= _UNDER_TEMP
        if self.cell_max_v > CELL_LIMITS[self.spec.chemistry][1]:
            flags |= _CELL_OV
        if self._bms_stopped:
            flags |= _BMS_STOP
        if self._max_offset - self._min_offset > 5.0:
            flags |= _IMBALANCE
        if self.in_window and self.bms_limit_a() < self.spec.i_max:
            flags |= _DERATED
        made = _FLAGS.get(flags)
        if made is None:
            made = _FLAGS[flags] = BmsFlags(flags)
        return made

    def declared_profile(self) -> DeclaredProfile:
        s = self.spec
        scale = 0.75 if FaultKind.LIE_VOLTAGE in self.faults else 1.0
        return DeclaredProfile(
            chemistry=s.chemistry,
            cells_series=max(1, round(s.cells_series * scale)),
            v_nom=s.v_nom * scale,
            v_max=s.v_max * scale,
            v_min=s.v_min * scale,
            capacity_wh=s.capacity_wh,
            i_max=s.i_max,
            i_min=s.i_min,
            t_min_c=s.t_min_c,
            t_max_c=s.t_max_c,
            i_end=min(s.cutoff_a, s.i_max) if self.declares_end else None,
        )

    # --- commands ---------------------------------------------------------------------------------

    def set_grant(self, current_a: float) -> None:
        self.grant_a = max(0.0, current_a)

    def inject(self, kind: FaultKind) -> None:
        self.faults.add(kind)
        if kind is FaultKind.BMS_STOP:
            self._bms_stopped = True
        elif kind is FaultKind.OVER_TEMPERATURE:
            self.temperature_c = max(self.temperature_c, self.spec.t_max_c + 5.0)

    # --- physics ----------------------------------------------------------------------------------

    def _target_current(self) -> float:
        if self.faults and FaultKind.OVERDRAW in self.faults and self.grant_a > 0:
            return self.grant_a * 1.5 + 1.0
        return min(self.grant_a, self.wants_current_a)

    def set_supply_limits(self, voltage_limit_v: float, current_limit_a: float) -> None:
        """The limits a CC/CV supply holds at the pack's terminals (no-controller mode)."""
        self.supply_voltage_limit_v = max(0.0, voltage_limit_v)
        self.supply_current_limit_a = max(0.0, current_limit_a)

    def supply(self, voltage_limit_v: float, current_limit_a: float, dt_s: float) -> None:
        """Advance ``dt_s`` behind a CC/CV stage holding these limits (hal's StageLoad)."""
        self.set_supply_limits(voltage_limit_v, current_limit_a)
        self.advance(dt_s, supply_closed=current_limit_a > 0)

    def _supply_allows(self) -> float:
        """What a bare pack draws from the supply: nothing once its BMS has opened the switch."""
        if self._bms_stopped or not self.in_window:
            return 0.0
        ceiling = self.supply_current_limit_a
        headroom = self.supply_voltage_limit_v / self.spec.cells_series - self._ocv()
        current = self._current_within(headroom, ceiling)
        self._cv = current < ceiling - 1e-3
        return current

    def advance(self, dt_s: float, supply_closed: bool) -> None:
        if dt_s <= 0:
            return
        before_a = self.current_a
        self._ramping = False
        self._grant_seen = self.grant_a
        if not supply_closed:
            self.current_a = self._target_a = 0.0
            self._cv = False
            self._cv_margin_v = math.inf
        elif not self.on_board_controller:
            # A bare pack follows the supply at once: the stage's own slew shapes the steps.
            self.current_a = self._supply_allows()
        else:
            target = self._target_current()
            self._cv_margin_v = math.inf
            if target > 0 and not (self.faults and FaultKind.OVERDRAW in self.faults):
                limit = self._cv_limit(target)
                self._cv = limit < target - 1e-3
                target = min(target, limit)
                self._cv_margin_v = (
                    self._cv_cell - self._ocv(self._max_offset) - self._overpotential(target)
                )
            self._target_a = target
            alpha = 1.0 - math.exp(-dt_s / _RESPONSE_TAU_S)
            self.current_a += (target - self.current_a) * alpha
            if self.current_a < 0.005:
                self.current_a = 0.0
            # A current still rising after power-on is not a taper: full needs it settled.
            self._ramping = self.current_a < target - max(0.01, 0.05 * target)
        self._integrate(dt_s)
        self._bms(dt_s)
        self._update_state()
        self._steady_s = self._steadiness(before_a, dt_s)

    def _cv_limit(self, ceiling: float) -> float:
        """The current that holds the highest cell at its constant-voltage setpoint.

        The pack's own limit (vmax = cells × setpoint) is then met too, since the mean cell sits
        at or below the highest one.
        """
        return self._current_within(self._cv_cell - self._ocv(self._max_offset), ceiling)

    def _at_charge_voltage(self) -> bool:
        """A BMS calls the pack full only with its highest cell at the charge voltage: a bare pack
        held lower (a stage whose output is still rising) only trickles, and is not full."""
        if self.on_board_controller:
            return True
        return self.cell_max_v >= self._cv_cell - _FULL_CELL_MARGIN_V

    def _current_within(self, headroom: float, ceiling: float) -> float:
        """The largest current up to ``ceiling`` whose overpotential per cell fits ``headroom``."""
        if headroom <= 0 or ceiling <= 0:
            return 0.0
        if self._overpotential(ceiling) <= headroom:
            return ceiling
        # _overpotential inlined (the same arithmetic): this loop is the physics' hot spot.
        resistance, capacity_ah, asinh = self._cell_resistance, self._capacity_ah, math.asinh
        low, high = 0.0, ceiling
        for _ in range(18):
            mid = (low + high) / 2
            if mid * resistance + 0.1 * asinh(max(0.0, mid / capacity_ah) / 0.1) <= headroom:
                low = mid
            else:
                high = mid
        return low

    def _integrate(self, dt_s: float) -> None:
        amps = self.current_a
        if amps > 0:
            self.energy_in_wh += self.terminal_voltage_v * amps * dt_s / 3600.0
            self.soc_pct = min(100.0, self.soc_pct + amps * dt_s / 36.0 / self.spec.capacity_ah)
        heat = amps * self._overpotential(amps) * self.spec.cells_series
        assert self._thermal is not None
        self.temperature_c = self._thermal.step(self.temperature_c, heat, self.ambient_c, dt_s)
        if self.faults and FaultKind.OVER_TEMPERATURE in self.faults:
            self.temperature_c = max(self.temperature_c, self.spec.t_max_c + 5.0)

    def _bms(self, dt_s: float) -> None:
        if self.cell_max_v > CELL_LIMITS[self.spec.chemistry][1]:
            self._ov_since += dt_s
            if self._ov_since >= _CELL_OV_DEBOUNCE_S:
                self._bms_stopped = True
        else:
            self._ov_since = 0.0
        if self.current_a > 0 and self.temperature_c > self.spec.t_max_c + 5.0:
            self._bms_stopped = True

    def _update_state(self) -> None:
        if self._bms_stopped:
            self.state = VehicleState.STOPPED_BY_BMS
            return
        if (
            self._cv
            and not self._ramping
            and 0 < self.current_a <= self.spec.cutoff_a
            and self._at_charge_voltage()
        ):
            self._full = True
        if self._full:
            self.state = VehicleState.FULL
        elif not self.in_window:
            self.state = VehicleState.REFUSED_TEMP
        elif self.current_a > 0.005:
            self.state = VehicleState.CHARGING_CV if self._cv else VehicleState.CHARGING_CC
        else:
            self.state = VehicleState.IDLE

    def snapshot(self) -> dict[str, Any]:
        cells = self.cell_voltages()
        return {
            "soc_pct": round(self.soc_pct, 2),
            "temperature_c": round(self.temperature_c, 2),
            "voltage_v": round(self.terminal_voltage_v, 3),
            "current_a": round(self.current_a, 3),
            "grant_a": round(self.grant_a, 3),
            "cell_min_v": round(min(cells), 4),
            "cell_max_v": round(max(cells), 4),
            "cells_v": [round(v, 4) for v in cells],
            "bms_state": self.state.value,
            "bms_flags": [f.name for f in BmsFlags if f and f in self.bms_flags],
            "energy_in_wh": round(self.energy_in_wh, 3),
            "faults": sorted(f.value for f in self.faults),
        }
