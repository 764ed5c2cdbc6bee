"""Sets the station's budget from its source, and keeps the operator's manual budget.

- ``static``: the configured budget, or the operator's manual budget when one is set.
- ``modbus`` / ``mqtt``: the site meter through :class:`~firmware.budget.policy.BudgetPolicy`;
  a manual budget is then a ceiling (an operator may ask for less than the meter allows, never
  for more than the building's connection can take).
- ``ocpp``: the central system's station limit through :class:`~firmware.budget.central.
  CentralLimit`, offered by the OCPP uplink (:meth:`BudgetManager.offer_limit`); a manual budget
  is a ceiling there too.

The manager talks to the station only through ``Station.set_budget`` and ``Station.snapshot``;
each change of source or staleness is logged and published on the station's event stream as a
``budget`` event, so the page says what sets the budget now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from firmware.budget.central import CentralLimit
from firmware.budget.manual import ManualBudgetFile
from firmware.budget.meters import Meter, MeterError
from firmware.budget.policy import BudgetPolicy, Decision
from firmware.events import EventHub
from firmware.site_config import BudgetConfig
from hal.clock import Clock, wait_for

log = logging.getLogger(__name__)

MAX_BUDGET_W = 100_000.0


class BudgetTarget(Protocol):
    """What the manager needs from the station (``firmware.station.station.Station``)."""

    events: EventHub

    def set_budget(self, watts: float) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...


class BudgetManager:
    def __init__(
        self,
        config: BudgetConfig,
        station: BudgetTarget,
        clock: Clock,
        *,
        static_w: float,
        manual_file: ManualBudgetFile,
        meter: Meter | None = None,
    ) -> None:
        self.config = config
        self.station = station
        self.clock = clock
        self.static_w = static_w
        self.manual_file = manual_file
        self.meter = meter
        self.manual_w: float | None = None
        self.site_w: float | None = None
        self.policy = BudgetPolicy(config, clock.monotonic())
        self.central = CentralLimit(config) if config.source == "ocpp" else None
        self.decision: Decision | None = None
        self.budget_w: float | None = None
        self.meter_error: str | None = None
        self._published: tuple[Any, ...] | None = None
        self.on_change: list[Callable[[dict[str, Any]], None]] = []

    @property
    def metered(self) -> bool:
        return self.config.source != "static"

    # --- start and the operator -------------------------------------------------------------------

    def load(self) -> None:
        """Read the saved manual budget and apply the budget once, before the station runs."""
        self.manual_w = self.manual_file.load()
        if self.manual_w is not None:
            log.info("manual budget %.0f W restored from %s", self.manual_w, self.manual_file.path)
        self.apply()

    async def set_manual(self, watts: float | None) -> dict[str, Any]:
        """The operator's budget (None: back to the configured source); saved before applied."""
        if watts is not None and not 0 <= watts <= MAX_BUDGET_W:
            raise ValueError(f"budget must be between 0 and {MAX_BUDGET_W:.0f} W")
        await self.manual_file.save(watts)
        self.manual_w = None if watts is None else float(watts)
        self.apply()
        return self.view()

    # --- readings ---------------------------------------------------------------------------------

    def observe(self, meter_w: float) -> None:
        """A fresh reading from the meter or the topic: decide and apply at once."""
        now = self.clock.monotonic()
        station_w = float(self.station.snapshot().get("measured_w", 0.0))
        was_stale = self.policy.reading_at is not None and self.policy.stale(now)
        self.site_w = meter_w
        self.meter_error = None
        self.policy.observe(meter_w, station_w, now)
        if was_stale:
            log.info("site reading back: %.0f W", meter_w)
        self.apply()

    def offer_limit(self, limit_w: float | None, what: str, online: bool) -> None:
        """The central system's station limit now (the ``ocpp`` source): decide and apply."""
        if self.central is None:
            return
        self.central.offer(limit_w, what, online, self.clock.monotonic())
        self.apply()

    async def run(self) -> None:
        """Poll the meter (if any) and re-decide every ``poll_s``, until cancelled."""
        while True:
            try:
                if self.meter is not None:
                    await self._poll()
                self.apply()
            except Exception:
                # Whatever broke, a metered budget must not stay where the meter last put it.
                log.exception("budget: decision failed")
                if self.metered:
                    self.budget_w = self.config.fallback_w
                    self.station.set_budget(self.config.fallback_w)
            await self.clock.sleep(self.config.poll_s)

    async def _poll(self) -> None:
        assert self.meter is not None
        try:
            watts = await wait_for(self.clock, self.meter.read_w(), self.config.modbus.timeout_s)
        except (MeterError, TimeoutError, OSError) as exc:
            text = str(exc) or "no answer"
            if self.meter_error is None:
                log.warning("%s: %s", self.meter.description, text)
            self.meter_error = text
            return
        self.observe(watts)

    # --- deciding ---------------------------------------------------------------------------------

    def active(self) -> str:
        """What sets the budget now: static, manual, meter, ocpp or fallback."""
        if not self.metered:
            return "manual" if self.manual_w is not None else "static"
        assert self.decision is not None
        if self.manual_w is not None and self.manual_w < self.decision.budget_w:
            return "manual"
        if self.decision.stale:
            return "fallback"
        return "ocpp" if self.central is not None else "meter"

    def apply(self) -> None:
        if self.metered:
            was_stale = self.decision.stale if self.decision is not None else False
            now = self.clock.monotonic()
            if self.central is not None:
                self.decision = self.central.decide(now)
            else:
                self.decision = self.policy.decide(now)
            if self.decision.stale and not was_stale:
                log.warning(
                    "budget falls back to %.0f W: %s", self.config.fallback_w, self.decision.text
                )
            watts = self.decision.budget_w
            if self.manual_w is not None:
                watts = min(watts, self.manual_w)
        else:
            watts = self.manual_w if self.manual_w is not None else self.static_w
        # Whole watts: a float32 meter's last digits are noise, not worth an allocator round.
        watts = float(round(min(MAX_BUDGET_W, max(0.0, watts))))
        if self.budget_w is None or abs(watts - self.budget_w) >= 0.5:
            self.budget_w = watts
            self.station.set_budget(watts)
        self._publish()

    def view(self) -> dict[str, Any]:
        active = self.active()
        if active == "manual":
            text = "set by the operator"
        elif active == "static":
            text = "the configured budget"
        else:
            assert self.decision is not None
            text = self.decision.text
            if self.meter_error and active == "fallback":
                text = f"{text} ({self.meter_error})"
        return {
            "kind": self.config.source,
            "mode": self.config.mode,
            "active": active,
            "text": text,
            "budget_w": self.budget_w,
            "manual_w": self.manual_w,
            "site_w": None if self.site_w is None else round(self.site_w, 1),
            "stale": bool(self.decision and self.decision.stale),
            "fallback_w": self.config.fallback_w if self.metered else None,
            "meter": self.meter.description if self.meter is not None else None,
        }

    def _publish(self) -> None:
        view = self.view()
        key = (view["active"], view["text"], view["budget_w"], view["stale"], view["manual_w"])
        if key == self._published:
            return
        self._published = key
        self.station.events.publish("budget", view)
        for callback in self.on_change:
            callback(view)
