"""What a scenario run produces: one record per arriving vehicle, samples, and the figures."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

OUTCOMES = ("full", "left", "stopped", "fault", "unsupported", "not_ready", "unfinished")
"""Every arriving vehicle ends in exactly one of these:

- ``full``: charged until its battery said full;
- ``left``: the rider took it away at the end of the stay, charged or not;
- ``stopped``: the vehicle or its BMS ended the charge for another reason;
- ``fault``: the station stopped the charge on a fault (the code is kept);
- ``unsupported``: no port could supply its pack, and the station said so;
- ``not_ready``: it never completed the handshake;
- ``unfinished``: still queued or charging when the scenario's time ran out.
"""


@dataclass
class EtaSample:
    t_s: float
    soc_pct: float
    eta_s: float | None
    """What the phone page shows (``Station.eta_seconds``)."""
    straight_s: float | None
    """Energy left over power now."""


@dataclass
class VehicleRecord:
    index: int
    model: str
    arrival_s: float
    soc_arrival_pct: float
    capacity_wh: float
    port_id: int | None = None
    plugged_s: float | None = None
    ready_s: float | None = None
    started_s: float | None = None
    power_on_s: float | None = None
    ended_s: float | None = None
    left_s: float | None = None
    outcome: str | None = None
    end_reason: str | None = None
    end_text: str | None = None
    fault_code: str | None = None
    energy_wh: float = 0.0
    """Metered by the station."""
    energy_in_wh: float = 0.0
    """Into the pack (the vehicle model's own account)."""
    soc_end_pct: float | None = None
    eta: list[EtaSample] = field(default_factory=list)

    @property
    def wait_s(self) -> float | None:
        """From arrival to the first power, port queue included."""
        return None if self.power_on_s is None else self.power_on_s - self.arrival_s

    @property
    def time_to_full_s(self) -> float | None:
        if self.outcome != "full" or self.ended_s is None:
            return None
        return self.ended_s - self.arrival_s


@dataclass
class Sample:
    t_s: float
    delivered_w: float
    """Flowing into packs now."""
    demand_w: float
    """What the vehicles on ports could take now, each at its own limit."""
    allocated_w: float
    """Sum of the grants, at each vehicle's maximum voltage (the station's own account)."""
    energy_wh: float
    """Energy into packs since the start."""
    plugged: int
    queued: int


@dataclass
class ScenarioResult:
    scenario: str
    policy: str
    seed: int
    ports: int
    budget_w: float
    window_s: float
    vehicles: list[VehicleRecord]
    samples: list[Sample] = field(default_factory=list)
    sim_s: float = 0.0
    wall_s: float = 0.0
    max_allocated_w: float = 0.0
    budget_violations: int = 0
    """Supervisor ticks on which the grants added up to more than the budget."""
    violations: list[dict[str, Any]] = field(default_factory=list)
    """The first few of those ticks: time, total, and each granted port's state and watts."""
    max_measured_w: float = 0.0
    faults: list[dict[str, Any]] = field(default_factory=list)

    def outcomes(self) -> Counter[str]:
        return Counter(v.outcome or "none" for v in self.vehicles)

    def energy_by_wh(self, t_s: float) -> float:
        """Energy into packs by time ``t_s`` (interpolated between samples)."""
        previous: Sample | None = None
        for sample in self.samples:
            if sample.t_s >= t_s:
                if previous is None or sample.t_s == previous.t_s:
                    return sample.energy_wh
                frac = (t_s - previous.t_s) / (sample.t_s - previous.t_s)
                return previous.energy_wh + frac * (sample.energy_wh - previous.energy_wh)
            previous = sample
        return self.samples[-1].energy_wh if self.samples else 0.0

    def utilisation_when_short(self) -> float | None:
        """Mean delivered power over the budget, over the samples where demand exceeded it."""
        short = [s.delivered_w for s in self.samples if s.demand_w > self.budget_w]
        if not short or self.budget_w <= 0:
            return None
        return statistics.fmean(short) / self.budget_w

    def short_fraction(self) -> float:
        """Share of the samples in which demand exceeded the budget."""
        if not self.samples:
            return 0.0
        return sum(1 for s in self.samples if s.demand_w > self.budget_w) / len(self.samples)

    def summary(self) -> dict[str, Any]:
        waits = [v.wait_s for v in self.vehicles if v.wait_s is not None]
        fulls = [v.time_to_full_s for v in self.vehicles if v.time_to_full_s is not None]
        total = sum(v.energy_in_wh for v in self.vehicles)
        util = self.utilisation_when_short()
        return {
            "scenario": self.scenario,
            "policy": self.policy,
            "seed": self.seed,
            "vehicles": len(self.vehicles),
            "outcomes": dict(sorted(self.outcomes().items())),
            "energy_wh": round(total, 1),
            "energy_in_window_wh": round(self.energy_by_wh(self.window_s), 1),
            "utilisation_when_short": None if util is None else round(util, 4),
            "short_fraction": round(self.short_fraction(), 4),
            "mean_wait_s": round(statistics.fmean(waits), 1) if waits else None,
            "mean_time_to_full_s": round(statistics.fmean(fulls), 1) if fulls else None,
            "max_allocated_w": round(self.max_allocated_w, 1),
            "budget_violations": self.budget_violations,
            "sim_s": round(self.sim_s, 1),
            "wall_s": round(self.wall_s, 2),
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = self.summary()
        return data
