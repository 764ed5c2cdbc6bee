"""From a site reading to a budget: lower at once, raise only after a dwell, never trust silence.

``budget = max_import_w - margin_w - (site load excluding the station)``. For a grid meter the
site load excluding the station is ``meter_w - station_w`` (the meter sees the station too); for
a SunSpec inverter, which measures only production, it is ``base_load_w - solar_w``. In ``solar``
mode ``max_import_w`` is what may still come from the grid (0: surplus only).

The load is smoothed upward-fast, downward-slow: a rise counts at once (the budget falls in the
same step), a fall decays with ``smoothing_s``, and the budget rises only once it has stayed above
the present budget for ``raise_dwell_s``. A reading older than ``stale_after_s``, or none yet,
never counts as zero load: the budget is ``fallback_w`` until readings return.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from firmware.site_config import BudgetConfig


@dataclass(frozen=True, slots=True)
class Decision:
    budget_w: float
    stale: bool
    target_w: float | None
    """What the reading alone would allow now (before the dwell); None when stale."""
    text: str


class BudgetPolicy:
    """The budget's state between readings. Pure: time comes in as arguments."""

    def __init__(self, config: BudgetConfig, started_at: float) -> None:
        self.config = config
        self.started_at = started_at
        self.load_w: float | None = None
        """The smoothed site load excluding the station."""
        self.reading_at: float | None = None
        self.budget_w = config.fallback_w
        self._above_since: float | None = None

    def site_load(self, meter_w: float, station_w: float) -> float:
        """The site's load besides the station, from one reading."""
        if self.config.source == "modbus" and self.config.modbus.meter == "sunspec":
            return self.config.base_load_w - meter_w
        return meter_w - station_w

    def observe(self, meter_w: float, station_w: float, now: float) -> None:
        """A fresh reading at ``now``; ``station_w`` is what the station measured then."""
        load = self.site_load(meter_w, station_w)
        if self.load_w is None or self.reading_at is None or load >= self.load_w:
            self.load_w = load  # a rise counts at once
        else:
            tau = self.config.smoothing_s
            dt = max(0.0, now - self.reading_at)
            alpha = 1.0 if tau <= 0 else 1.0 - math.exp(-dt / tau)
            self.load_w += (load - self.load_w) * alpha
        self.reading_at = now

    def stale(self, now: float) -> bool:
        since = self.reading_at if self.reading_at is not None else self.started_at
        return self.reading_at is None or now - since > self.config.stale_after_s

    def decide(self, now: float) -> Decision:
        c = self.config
        if self.stale(now) or self.load_w is None:
            self._above_since = None
            self.budget_w = c.fallback_w
            if self.reading_at is None:
                text = "no site reading yet"
            else:
                age = now - self.reading_at
                text = f"site reading {age:.0f} s old"
            return Decision(self.budget_w, True, None, text)
        target = c.max_import_w - c.margin_w - self.load_w
        target = min(c.max_w, max(c.min_w, target))
        if target <= self.budget_w:
            self._above_since = None
            self.budget_w = target
            return Decision(self.budget_w, False, target, "following the site meter")
        if self._above_since is None:
            self._above_since = now
        waited = now - self._above_since
        if waited >= c.raise_dwell_s:
            self.budget_w = target
            return Decision(self.budget_w, False, target, "following the site meter")
        left = c.raise_dwell_s - waited
        text = f"site meter allows {target:.0f} W; raising in {left:.0f} s"
        return Decision(self.budget_w, False, target, text)
