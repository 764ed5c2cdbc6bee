"""The grants the allocator is expected to give over the coming hours, port by port.

Ports that share one budget finish sooner when another vehicle leaves or tapers. The outlook runs
every sharing vehicle's pack model (firmware/station/pack.py) forward together, a minute at a
time, sharing the budget the way SharingPolicy does (minimums first, then max-min fair shares up
to each vehicle's cap, a tapering vehicle capped a little above what it takes), and hands each
port its own schedule of offered current for the time-to-full. It is recomputed when the set of
vehicles changes and otherwise every REPLAN_S.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from firmware.station.allocator import HEADROOM_MARGIN, HEADROOM_MARGIN_A, floor_a, water_fill
from firmware.station.eta_history import EtaHistory
from firmware.station.pack import Offer, Pack
from firmware.station.port import PortController
from firmware.station.states import PortState

STEP_S = 120.0
REPLAN_S = 60.0
HORIZON_S = 16 * 3600.0
SHARING = (PortState.WAITING, PortState.STARTING, PortState.CHARGING)


@dataclass(frozen=True, slots=True)
class Plan:
    offer: Offer
    sharing_with: int
    """Other vehicles sharing the budget now."""
    gains_power: bool
    """The port is expected to get noticeably more current before it is full."""
    planned_at: float
    """When the shares were worked out: one plan, one time."""


@dataclass
class _Member:
    port: PortController
    pack: Pack
    soc: float
    target: float
    i_min: float
    i_max: float
    v_max: float
    grant: float
    charging: bool
    done: bool = False
    grants: list[float] = field(default_factory=list)


class Fleet:
    """The ports of one station, the budget they share, and what their models have taught."""

    def __init__(
        self,
        ports: Iterable[PortController],
        budget_w: Callable[[], float],
        history: EtaHistory | None = None,
    ) -> None:
        self.ports = list(ports)
        self.budget_w = budget_w
        self.history = history or EtaHistory()
        self._planned_at: float | None = None
        self._members: tuple[int, ...] = ()
        self._plans: dict[int, tuple[float, list[float], int, float]] = {}
        """Per port: when planned, the grant at each step, how many others share, the most
        any later step grants (whether the port gains power does not change between plans)."""
        self.pack_of: Callable[[PortController], Pack | None] = lambda _port: None

    def plan_for(self, port: PortController) -> Plan | None:
        now = port.clock.monotonic()
        members = tuple(
            p.port_id
            for p in self.ports
            if p.session is not None and p.state in SHARING and p.battery is not None
        )
        if (
            self._planned_at is None
            or members != self._members
            or now - self._planned_at >= REPLAN_S
            or now < self._planned_at
        ):
            self._replan(now)
            self._members = members
        entry = self._plans.get(port.port_id)
        if entry is None:
            return None
        start, grants, others, most_later = entry
        if not grants:
            return None
        current = port.grant_a
        gains = most_later > current * 1.1 + 0.05  # any later grant above that

        def offer(t: float) -> tuple[float, float]:
            at = t + (now - start)
            index = int(at // STEP_S)
            if index == 0:
                return current, STEP_S - at  # the grant the port holds now, until the next step
            if index >= len(grants):
                return grants[-1], float("inf")
            return grants[index], (index + 1) * STEP_S - at

        return Plan(offer=offer, sharing_with=others, gains_power=gains, planned_at=start)

    def _replan(self, now: float) -> None:
        self._planned_at = now
        self._plans = {}
        members: list[_Member] = []
        for p in self.ports:
            b, tel = p.battery, p.telemetry
            if p.session is None or b is None or tel is None or p.state not in SHARING:
                continue
            pack = self.pack_of(p)
            if pack is None or b.v_max_v <= 0:
                continue
            i_max = min(b.i_max_a, p.spec.max_current_a, p.spec.max_power_w / b.v_max_v)
            i_max *= p.thermal_factor
            pack.soc_taking(i_max)  # asked of at every step below: where its taper begins
            members.append(
                _Member(
                    port=p,
                    pack=pack,
                    soc=tel.soc_pct,
                    target=b.target_soc_pct or 100.0,
                    i_min=min(b.i_min_a, i_max),
                    i_max=i_max,
                    v_max=b.v_max_v,
                    grant=p.grant_a,
                    charging=p.state != PortState.WAITING,
                )
            )
        if not members:
            return
        budget = max(0.0, self.budget_w())
        t = 0.0
        while t < HORIZON_S and any(not m.done for m in members):
            self._share(members, budget, first=t == 0.0)
            for m in members:
                if m.done:
                    # it has left the sharing; its own estimate keeps its last grant to the end
                    m.grants.append(m.grants[-1] if m.grants else m.grant)
                    continue
                m.grants.append(m.grant)
                amps = m.pack.accepts_a(m.soc, m.grant)
                if (amps < m.grant - 1e-3 and amps <= m.pack.cutoff_a) or m.soc >= m.target:
                    m.done = True
                    continue
                m.soc = min(100.0, m.soc + amps * STEP_S / (36.0 * m.pack.capacity_ah))
            t += STEP_S
        for m in members:
            most_later = max(m.grants[1:], default=-math.inf)
            self._plans[m.port.port_id] = (now, m.grants, len(members) - 1, most_later)

    @staticmethod
    def _share(members: list[_Member], budget: float, first: bool) -> None:
        """One allocation round, as SharingPolicy would do it (without turns)."""
        live = [m for m in members if not m.done]
        if first:
            held = [m for m in live if m.charging]
            budget -= sum(m.grant * m.v_max for m in held)
            live = [m for m in live if not m.charging]
            if not live:
                return
        live.sort(key=lambda m: (not m.charging, m.port.port_id))
        admitted, used = [], 0.0
        for m in live:
            need = m.i_min * m.v_max
            if used + need <= budget + 1e-9:
                admitted.append(m)
                used += need
            else:
                m.grant = 0.0
        caps = []
        for m in admitted:
            takes = m.pack.accepts_a(m.soc, m.i_max)
            cap = m.i_max
            if takes < m.i_max - 1e-3:
                cap = min(m.i_max, max(m.i_min, takes * HEADROOM_MARGIN + HEADROOM_MARGIN_A))
            caps.append(cap * m.v_max)
        shares = water_fill(budget, [m.i_min * m.v_max for m in admitted], caps)
        for m, share in zip(admitted, shares, strict=True):
            amps = floor_a(share / m.v_max)
            m.grant = amps if amps >= m.i_min - 1e-9 else 0.0
            m.charging = m.charging or m.grant > 0


_fleets: weakref.WeakKeyDictionary[PortController, weakref.ref[Fleet]] = weakref.WeakKeyDictionary()


def share_budget(
    ports: Iterable[PortController],
    budget_w: Callable[[], float],
    pack_of: Callable[[PortController], Pack | None],
    history: EtaHistory | None = None,
) -> Fleet:
    """Tell the time-to-full that these ports share one budget. The caller keeps the Fleet."""
    fleet = Fleet(ports, budget_w, history)
    fleet.pack_of = pack_of
    for port in fleet.ports:
        _fleets[port] = weakref.ref(fleet)
    return fleet


def fleet_of(port: PortController) -> Fleet | None:
    ref = _fleets.get(port)
    return ref() if ref is not None else None
