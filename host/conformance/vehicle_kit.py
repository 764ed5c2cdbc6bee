"""``--role vehicle``: the kit plays a station and checks a vehicle against the VH- requirements.

The kit has no power stage of its own: what the vehicle draws is read from its TEL (``i``), which
is what its own controller regulates. So every current rule is checked on the vehicle's report,
with the tolerance of §5, at the vehicle's telemetry period; a vehicle that lies in TEL is caught
by a station's measurement, not by this kit. ``POWER on=1`` tells the vehicle power is on whether
or not a supply is wired to its inlet.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

from firmware.pevlink.messages import Battery, Boot, Fault, Power, StationState, Stop, Summary
from firmware.pevlink.timers import I_BREAK_A, T_LINK, T_RAMP, T_SETTLE, T_TEL_PERIOD
from firmware.pevlink.vocabulary import SUPPORTED_VERSIONS
from host.conformance.as_station import tolerance
from host.conformance.common import Blocked, is_reply
from host.conformance.report import Results
from host.conformance.tape_checks import (
    heartbeat,
    numbering,
    one_outstanding,
    replies_echo,
    well_formed,
)
from host.conformance.vehicle_link_checks import LinkChecks
from host.conformance.wire import is_msg


class VehicleKit(LinkChecks):
    """Every VH- check the kit can run, in order, and the rules checked on the whole tape."""

    # --- running ----------------------------------------------------------------------------------

    async def run(self) -> Results:
        started = self.wire.clock.monotonic()
        checks: list[tuple[Callable[[], Awaitable[None]], tuple[str, ...]]] = [
            (
                self.check_identification,
                (
                    "VH-BOOT-01",
                    "VH-APP-01",
                    "VH-LINK-10",
                    "VH-APP-02",
                    "VH-BOOT-02",
                    "VH-LINK-07",
                    "VH-APP-05",
                    "VH-APP-12",
                    "VH-APP-13",
                    "VH-LINK-09",
                    "VH-LINK-08",
                    "VH-LINK-03",
                    "VH-LINK-14",
                    "VH-LINK-02",
                    "VH-LINK-15",
                    "VH-LINK-16",
                    "VH-LINK-11",
                    "VH-APP-06",
                    "VH-APP-07",
                ),
            ),
            (self.check_charge, ("VH-APP-08", "VH-APP-09", "VH-APP-10", "VH-APP-11")),
            (self.check_station_fault, ("VH-APP-11",)),
            (self.check_station_boot, ("VH-BOOT-02",)),
            (self.check_link_loss, ("VH-LINK-13",)),
        ]
        for check, ids in checks:
            try:
                await check()
            except Blocked as why:
                for rid in ids:
                    if not self.results.has(rid):
                        self.results.untestable(rid, str(why))
        self.tape_checks()
        self.results.seconds = self.wire.clock.monotonic() - started
        return self.results

    # --- the checks -------------------------------------------------------------------------------
    async def check_charge(self) -> None:
        r, wire = self.results, self.wire
        if self.battery is None:
            raise Blocked("no battery profile")
        if not self.any_tel():
            raise Blocked("no TEL: the kit cannot see the current")
        since = wire.mark()
        power = await self._ask(Power(1))
        if power is None:
            raise Blocked("POWER on=1 not answered")
        g = self.grant_a()
        on_at = wire.now()
        await wire.pause(3.0)
        tels = self.tels(on_at + T_SETTLE)
        worst = max((t.current_a for t in tels), default=0.0)
        r.check(
            "VH-APP-08",
            worst <= g + tolerance(g),
            f"TEL i={worst:g} A with a grant of {g:g} A",
            wire.lines(since),
        )
        # a lower limit
        low = round(g / 2, 2)
        since = wire.mark()
        reply = await self._grant(low)
        if reply is not None:
            self._check_grant_reply(reply, low)
        lowered_at = wire.now()
        await wire.pause(T_SETTLE + T_TEL_PERIOD + 1.2)
        after = self.tels(lowered_at + T_SETTLE + self.slack)
        if worst <= low + tolerance(low):
            r.untestable(
                "VH-APP-09",
                f"the vehicle drew no more than {worst:g} A, under the lowered grant already",
            )
        elif not after:
            r.untestable("VH-APP-09", "no TEL after the lowering")
        else:
            high = max(t.current_a for t in after)
            r.check(
                "VH-APP-09",
                high <= low + tolerance(low),
                f"TEL i={high:g} A {T_SETTLE:g} s after GRANT i={low:g}",
                wire.lines(since),
            )
        # a normal stop
        since = wire.mark()
        reply = await self._ask(Stop("user"))
        stop_at = wire.now()
        ok = reply is not None and is_reply(reply, "STOP")
        await wire.pause(T_RAMP + T_TEL_PERIOD + 0.5)
        late = self.tels(stop_at + T_RAMP + self.slack)
        high = max((t.current_a for t in late), default=0.0)
        r.check(
            "VH-APP-10",
            ok and bool(late) and high <= I_BREAK_A,
            f"after STOP: reply {reply.text() if reply else 'none'}, TEL i={high:g} A after T_RAMP",
            wire.lines(since),
        )
        since = wire.mark()
        off = await self._ask(Power(0))
        await wire.send(Summary(1.0, 5, "user", 100.0))
        r.check(
            "VH-APP-11",
            off is not None and is_reply(off, "POWER"),
            "POWER on=0 not answered",
            wire.lines(since),
        )

    async def check_station_fault(self) -> None:
        r, wire = self.results, self.wire
        if self.battery is None or not self.any_tel():
            raise Blocked("no battery profile or no TEL")
        await wire.send(StationState("waiting", "Waiting for power"))
        g = await self.powered()
        drawing = self.tels(wire.now() - 1.1)
        if not drawing or max(t.current_a for t in drawing) <= I_BREAK_A:
            raise Blocked("the vehicle drew nothing after POWER on=1")
        since = wire.mark()
        await wire.send(Fault("internal", "stop", "Kit: a fault at the station"))
        at = wire.now()
        await wire.pause(T_SETTLE + T_TEL_PERIOD + 1.0)
        after = self.tels(at + T_SETTLE + self.slack)
        high = max((t.current_a for t in after), default=0.0)
        r.check(
            "VH-APP-11",
            bool(after) and high <= I_BREAK_A,
            f"TEL i={high:g} A after FAULT sev=stop (grant {g:g} A)",
            wire.lines(since),
        )
        await self._ask(Power(0))
        await wire.send(Summary(0.5, 3, "fault", 100.0))

    async def check_station_boot(self) -> None:
        r, wire = self.results, self.wire
        if self.battery is None or not self.any_tel():
            raise Blocked("no battery profile or no TEL")
        await wire.send(StationState("waiting", "Waiting for power"))
        await self.powered()
        since = wire.mark()
        self.battery, self.wanted_a = None, 0.0
        await wire.send(Boot("station", SUPPORTED_VERSIONS))
        at = wire.now()
        hello = await wire.expect(is_msg("HELLO", "Q"), 2.0 + self.slack, since)
        # Once settled, a whole TEL period (and the slack) is watched, whatever the TELs' phase.
        settled = at + T_SETTLE + self.slack
        await wire.pause(max(0.0, settled + T_TEL_PERIOD + self.slack - wire.now()))
        after = self.tels(settled)
        high = max((t.current_a for t in after), default=0.0)
        r.check(
            "VH-BOOT-02",
            hello is not None and bool(after) and high <= I_BREAK_A,
            f"after the station's BOOT: {'HELLO' if hello else 'no HELLO'}, TEL i={high:g} A",
            wire.lines(since),
        )
        await self.ready()

    async def check_link_loss(self) -> None:
        r, wire = self.results, self.wire
        if self.battery is None or not self.any_tel():
            raise Blocked("no battery profile or no TEL")
        await self.powered()
        since = wire.mark()
        wire.muted = True
        at = wire.now()
        await wire.pause(T_LINK + T_SETTLE + T_TEL_PERIOD + 1.0)
        wire.muted = False
        after = self.tels(at + T_LINK + T_SETTLE + self.slack)
        high = max((t.current_a for t in after), default=0.0)
        r.check(
            "VH-LINK-13",
            bool(after) and high <= I_BREAK_A,
            f"TEL i={high:g} A after {T_LINK:g} s without a line from the station",
            wire.lines(since),
        )

    # --- over the whole tape ----------------------------------------------------------------------

    def tape_checks(self) -> None:
        w, r = self.wire, self.results
        well_formed(w, r, "VH-LINK-01", "vehicle")
        replies_echo(w, r, "VH-LINK-04")
        numbering(w, r, "VH-LINK-05")
        one_outstanding(w, r, "VH-LINK-06", self.slack)
        if any(e.decoded is not None for e in w.received()):
            heartbeat(w, r, "VH-LINK-12", self.slack)
        self._telemetry_period()
        self._request_voltage()

    def _telemetry_period(self) -> None:
        if self.ready_at is None:
            return
        times = [e.t for e in self.wire.received() if is_msg("TEL")(e) and e.t >= self.ready_at]
        end = self.wire.now()
        if not times:
            since = next((e.index for e in self.wire.entries if e.t >= self.ready_at), 0)
            self.results.failed(
                "VH-APP-03",
                "no TEL after HELLO was answered",
                self.wire.lines(since, until=since + 12),
            )
            return
        points = [self.ready_at, *times, end]
        for a, b in itertools.pairwise(points):
            if b - a > T_TEL_PERIOD + self.slack:
                index = next((e.index for e in self.wire.entries if e.t >= a), 0)
                self.results.failed(
                    "VH-APP-03",
                    f"{b - a:.2f} s without TEL (at most {T_TEL_PERIOD:g} s)",
                    self.wire.around(index, 2, 8),
                )
                return
        self.results.passed("VH-APP-03")

    def _request_voltage(self) -> None:
        vmax: float | None = None
        for e in self.wire.received():
            d = e.decoded
            if d is None:
                continue
            if isinstance(d.message, Battery):
                vmax = d.message.v_max_v
            elif d.kind == "Q" and d.message.NAME == "REQ" and vmax is not None:
                v = getattr(d.message, "voltage_v", 0.0)
                if v > vmax + 1e-6:
                    self.results.failed(
                        "VH-APP-04",
                        f"REQ v={v:g} above BATT vmax={vmax:g}",
                        self.wire.around(e.index),
                    )
                    return
                self.results.passed("VH-APP-04")
