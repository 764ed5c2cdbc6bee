"""The ``ocpp`` budget source: the limit a central system sets for the whole station.

The OCPP uplink offers, every second, the limit in force on connector 0 (a
ChargePointMaxProfile, else a TxDefaultProfile there) and whether its link is up. Like a meter,
the source goes stale: with no word from the central system for ``stale_after_s``, or no limit
in force, the budget is ``fallback_w`` until a limit returns, never the connection's maximum.
The limit is held within ``min_w``..``max_w``. This module knows nothing of OCPP itself.
"""

from __future__ import annotations

from firmware.budget.policy import Decision
from firmware.site_config import BudgetConfig


class CentralLimit:
    """The central system's station limit between offers. Pure: time comes in as arguments."""

    def __init__(self, config: BudgetConfig) -> None:
        self.config = config
        self.limit_w: float | None = None
        self.what = ""
        self.heard_at: float | None = None
        """When the link to the central system was last seen up."""

    def offer(self, limit_w: float | None, what: str, online: bool, now: float) -> None:
        """The limit in force now (None: none), which profile gives it, and the link's state."""
        self.limit_w = limit_w
        self.what = what
        if online:
            self.heard_at = now

    def decide(self, now: float) -> Decision:
        c = self.config
        if self.heard_at is None:
            return Decision(c.fallback_w, True, None, "no word from the central system yet")
        silent = now - self.heard_at
        if silent > c.stale_after_s:
            text = f"central system unreachable for {silent:.0f} s"
            return Decision(c.fallback_w, True, None, text)
        if self.limit_w is None:
            return Decision(c.fallback_w, True, None, "no limit from the central system in force")
        target = min(c.max_w, max(c.min_w, self.limit_w))
        return Decision(target, False, target, f"set by the central system ({self.what})")
