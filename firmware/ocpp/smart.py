"""Charging profiles applied to the station: its budget and the connectors' caps, every second.

The profiles themselves and their arithmetic are in :mod:`firmware.ocpp.profiles`; this module
reads the station's measurements for the A↔W conversions and acts through ``set_budget`` and the
:class:`CappedPolicy` the daemon gave the station.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from firmware.ocpp.profiles import CappedPolicy, ProfileBook
from firmware.station.station import Station
from hal.clock import Clock, wait_for

PROFILE_POLL_S = 1.0
"""Limits are re-read this often, so a schedule's next period starts on time."""


def port_volts(view: dict[str, Any]) -> tuple[float, float]:
    """(measured voltage for A↔W, the allocator's accounting voltage for W→A) of a port view."""
    accounting = float((view.get("granted") or {}).get("volts") or 0.0)
    accounting = accounting or float(view["limits"]["v_max_v"])
    measured = float((view.get("measured") or {}).get("volts") or 0.0)
    return (measured or accounting), accounting


class SmartCharging:
    def __init__(
        self,
        station: Station,
        clock: Clock,
        policy: CappedPolicy | None,
        tx_start: Callable[[int], float | None],
    ) -> None:
        self.station = station
        self.clock = clock
        self.policy = policy
        self.book = ProfileBook()
        self._tx_start = tx_start
        self._budget_set: float | None = None
        self._budget_base = station.budget_w
        self.changed = asyncio.Event()
        self.feed: Callable[[float | None, str], None] | None = None
        """With the ``ocpp`` budget source: the station limit goes there, and the budget
        manager, not this class, sets the budget."""

    async def run(self) -> None:
        while True:
            self.apply()
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await wait_for(self.clock, self.changed.wait(), PROFILE_POLL_S)

    def apply(self) -> None:
        """The budget in force and each connector's cap, from the profiles in force now."""
        now = self.clock.wall()
        views = self.station.snapshot()["ports"]
        live_volts = [float(v["measured"]["volts"]) for v in views if v["relay_closed"]]
        station_volts = (
            min(live_volts) if live_volts else min(float(v["limits"]["v_max_v"]) for v in views)
        )
        if self.feed is not None:
            self.feed(*self.book.budget_limit_w(now, station_volts))
        else:
            self._cap_budget(self.book.station_limit_w(now, station_volts))
        self._cap_connectors(now, views)

    def _cap_budget(self, limit: float | None) -> None:
        """The budget in force: the station's own, lowered by a ChargePointMaxProfile."""
        budget = self.station.budget_w
        if self._budget_set is None or abs(budget - self._budget_set) > 1e-6:
            self._budget_base = budget  # set by someone else: that is the station's own budget
        target = self._budget_base if limit is None else min(self._budget_base, max(0.0, limit))
        if abs(target - budget) > 1e-6:
            self.station.set_budget(target)
        self._budget_set = target

    def _cap_connectors(self, now: float, views: list[dict[str, Any]]) -> None:
        if self.policy is None:
            return
        before = dict(self.policy.caps_a)
        for view in views:
            connector = int(view["id"])
            measured, accounting = port_volts(view)
            cap_w = self.book.connector_limit_w(connector, now, self._tx_start(connector), measured)
            if cap_w is None:
                self.policy.caps_a.pop(connector, None)
            else:
                self.policy.caps_a[connector] = round(max(0.0, cap_w) / accounting, 3)
        if self.policy.caps_a != before:
            self.station.wake_allocator()
