"""What a simulated power stage feeds: a pack that draws what the stage allows.

hal/ knows nothing of vehicles; a stage model takes any :class:`StageLoad`. :class:`SimplePack`
(an open-circuit voltage rising with charge behind an internal resistance) is enough for the
stage's own tests; the bench's vehicle model, in its no-controller mode, is the richer one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


def slew_toward(value: float, target: float, step: float) -> float:
    """``value`` moved toward ``target`` by at most ``step``: a regulator's limit slewing."""
    if value < target:
        return min(target, value + step)
    return max(target, value - step)


class StageLoad(Protocol):
    def supply(self, voltage_limit_v: float, current_limit_a: float, dt_s: float) -> None:
        """Advance ``dt_s`` with the stage holding these limits (a 0 A limit: output off)."""
        ...

    @property
    def terminal_voltage_v(self) -> float: ...

    @property
    def current_a(self) -> float: ...


@dataclass
class SimplePack:
    """A pack as an open-circuit voltage, linear in charge, behind an internal resistance.

    The current is what the stage allows: the least of its current limit and the current that
    brings the terminals to its voltage limit, never negative (the stage does not sink).
    """

    empty_v: float
    full_v: float
    capacity_ah: float
    resistance_ohm: float
    soc: float = 0.2
    """State of charge, 0 to 1."""
    current_a: float = 0.0

    @property
    def ocv_v(self) -> float:
        return self.empty_v + (self.full_v - self.empty_v) * min(1.0, max(0.0, self.soc))

    @property
    def terminal_voltage_v(self) -> float:
        return self.ocv_v + self.current_a * self.resistance_ohm

    def supply(self, voltage_limit_v: float, current_limit_a: float, dt_s: float) -> None:
        headroom = (voltage_limit_v - self.ocv_v) / self.resistance_ohm
        self.current_a = max(0.0, min(current_limit_a, headroom))
        self.soc = min(1.0, self.soc + self.current_a * dt_s / 3600.0 / self.capacity_ah)
