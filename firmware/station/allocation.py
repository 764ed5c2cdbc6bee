"""The allocator loop: once a second (or when something changes) share the budget, then apply it.

Reductions are applied first and confirmed by the sensors before any increase; increases are
clipped to what the budget leaves (firmware/station/allocator.py), so a round always does what it
safely can. A port busy with another action keeps its grant this round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from firmware.pevlink.timers import T_SETTLE
from firmware.pevlink.vocabulary import BmsFlag
from firmware.station.allocator import Demand, Policy, plan_transition
from firmware.station.port import PortController
from firmware.station.safety import overcurrent_threshold
from firmware.station.states import PortEvent, PortState
from hal.clock import wait_for
from hal.errors import HalError

if TYPE_CHECKING:
    from firmware.station.station import Station

log = logging.getLogger(__name__)

START_TEMPERATURE_MARGIN_C = 2.0
"""How far inside its charging window a waiting battery must be before its switch closes."""

SHARING_STATES = (PortState.WAITING, PortState.STARTING, PortState.CHARGING)


class Allocation:
    def __init__(self, station: Station, policy: Policy) -> None:
        self.station = station
        self.policy = policy
        self.clock = station.clock
        self.wake = asyncio.Event()

    async def run(self) -> None:
        period = self.station.settings.allocation_period_s
        while True:
            with contextlib.suppress(TimeoutError):
                await wait_for(self.clock, self.wake.wait(), period)
            self.wake.clear()
            try:
                await self.once()
            except Exception:
                log.exception("allocation round failed")

    def demands(self, now: float) -> list[Demand]:
        out: list[Demand] = []
        poll = self.station.poll_period_s
        for port in self.station.ports.values():
            session, battery = port.session, port.battery
            if session is None or battery is None or port.telemetry is None:
                continue  # no power before the vehicle has reported its state
            if port.state not in SHARING_STATES:
                continue
            if port.state == PortState.WAITING and not self._may_start(port):
                continue
            fresh = (
                port.reading is not None
                and port.reading_at is not None
                and now - port.reading_at <= 4 * poll
                and port.relay_closed
                and port.verified
            )
            measured = port.reading.current_a if fresh and port.reading is not None else None
            if measured is not None and now < port.settled_at:
                measured = max(measured, port.grant_a)  # still ramping: not spare headroom
            measured_v = flowing = None
            step = 0.0
            stage = port.io.stage
            if stage is not None and measured is not None and port.reading is not None:
                # The stage holds the current to the grant: count it at the pack's voltage.
                measured_v, flowing = port.reading.bus_voltage_v, port.reading.current_a
                with contextlib.suppress(HalError):  # opened before power-on; 10 mA otherwise
                    step = stage.limits.current_step_a
            departure = None
            if battery.departure_s is not None:
                declared_at = (
                    port.battery_at if port.battery_at is not None else session.requested_at
                )
                departure = declared_at + battery.departure_s
            out.append(
                Demand(
                    port_id=port.port_id,
                    v_max_v=battery.v_max_v,
                    i_min_a=min(battery.i_min_a, port.vehicle_max_a()),
                    i_max_a=port.vehicle_max_a(),
                    requested_since=session.requested_at,
                    charging=port.state != PortState.WAITING,
                    granted_a=port.grant_a,
                    measured_a=measured,
                    soc_pct=port.telemetry.soc_pct if port.telemetry else battery.soc_pct,
                    capacity_wh=battery.capacity_wh,
                    target_soc_pct=battery.target_soc_pct,
                    departure_at=departure,
                    measured_v=measured_v,
                    flowing_a=flowing,
                    step_a=step,
                )
            )
        return out

    def _may_start(self, port: PortController) -> bool:
        """A battery outside its charging window waits with the switch open, and says why."""
        limits, tel = port.limits(), port.telemetry
        if limits is None or tel is None:
            return False
        # Start only a little inside the window, so a battery at its edge does not start and trip.
        margin = START_TEMPERATURE_MARGIN_C
        now_c = tel.temperature_c
        flags = BmsFlag(tel.flags)
        if now_c < limits.t_min_c + margin or flags & BmsFlag.UNDER_TEMP:
            text = f"Waiting for the battery to warm up to {limits.t_min_c + margin:.0f} °C"
        elif now_c > limits.t_max_c - margin or flags & BmsFlag.OVER_TEMP:
            text = f"Waiting for the battery to cool below {limits.t_max_c - margin:.0f} °C"
        else:
            return True
        text = f"{text} (now {now_c:.0f} °C)"
        if port.state_text != text:
            port.move(PortEvent.WAIT, text)
        return False

    async def once(self) -> None:
        station = self.station
        now = self.clock.monotonic()
        demands = self.demands(now)
        # Power still flowing to a port outside the sharing (a vehicle ramping down to stop) is
        # not free until its switch opens.
        sharing = {d.port_id for d in demands}
        reserved = sum(
            p.grant_a * p.battery.v_max_v
            for p in station.ports.values()
            if p.relay_closed and p.port_id not in sharing and p.battery is not None
        )
        budget = max(0.0, station.budget_w - reserved)
        grants = self.policy.allocate(budget, demands, now)
        current = {d.port_id: station.ports[d.port_id].grant_a for d in demands if d.charging}
        target: dict[int, float] = {}
        volts: dict[int, float] = {}
        for d in demands:
            port = station.ports[d.port_id]
            grant = grants.get(d.port_id)
            new = grant.current_a if grant is not None else 0.0
            if port.busy:
                new = current.get(d.port_id, 0.0)
            target[d.port_id] = new
            # Counted at the voltage the policy used for this grant; a busy port's kept grant,
            # and one rounded to zero, as the demand counts it (docs/power-sharing.md).
            volts[d.port_id] = d.power_w(new) / new if new > 0 else d.volts
            port.account_v = None if d.measured_v is None else volts[d.port_id]
            if grant is not None:
                port.limit_detail = grant.detail
                if port.state == PortState.WAITING and new <= 0 and not port.busy:
                    text = grant.detail or "Waiting for power"
                    if port.state_text != text:
                        port.move(PortEvent.WAIT, text)
        reductions, increases = plan_transition(budget, volts, current, target)
        await asyncio.gather(*(self._reduce(station.ports[pid], a) for pid, a in reductions))
        await self._await_settled([station.ports[pid] for pid, _ in reductions])
        await asyncio.gather(*(self._increase(station.ports[pid], a) for pid, a in increases))
        station.publish_summary()

    async def _reduce(self, port: PortController, amps: float) -> None:
        if port.state != PortState.CHARGING or port.busy:
            return
        if amps <= 0:
            await port.pause("rotation")
        else:
            await port.change_grant(amps, "shared")

    async def _increase(self, port: PortController, amps: float) -> None:
        if amps <= 0:
            return
        if port.state == PortState.WAITING:
            await port.admit(amps, "shared")
        elif port.state == PortState.CHARGING and not port.busy:
            await port.change_grant(amps, "shared")

    async def _await_settled(self, ports: list[PortController]) -> None:
        """Increases wait until reduced ports measure at or under their new grant."""
        safety = self.station.settings.safety
        deadline = self.clock.monotonic() + T_SETTLE
        while self.clock.monotonic() < deadline:
            if all(
                not p.relay_closed
                or p.reading is None
                or p.reading.current_a <= overcurrent_threshold(safety, p.grant_a)
                for p in ports
            ):
                return
            await self.clock.sleep(self.station.poll_period_s)
