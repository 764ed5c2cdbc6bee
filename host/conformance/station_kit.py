"""``--role station``: the kit plays a vehicle and checks a station against the ST- requirements.

Each check is a short, scripted conversation; between checks the kit frees the port the way a
rider would, by unplugging (T_LINK of silence), so every check starts from an empty port. A check
whose start the station does not allow (no session started, no voltage at the port) leaves its
requirements "not testable here", with the reason, rather than failing them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from firmware.pevlink.messages import Boot, ChargeRequest, Fault, Grant, GrantReply, Nak, Stop
from firmware.pevlink.timers import N_RETRIES, T_LINK, T_REPLY, T_TEL, T_TEL_PERIOD, T_VERIFY
from firmware.pevlink.vocabulary import SUPPORTED_VERSIONS
from host.conformance.as_vehicle import why_not
from host.conformance.common import Blocked, is_any, is_nak, is_reply, short, value
from host.conformance.report import Results
from host.conformance.station_link_checks import LinkChecks
from host.conformance.tape_checks import (
    heartbeat,
    numbering,
    one_outstanding,
    replies_echo,
    well_formed,
)
from host.conformance.wire import Entry, is_msg


class StationKit(LinkChecks):
    """Every ST- check the kit can run, in order, and the rules checked on the whole tape."""

    # --- running ----------------------------------------------------------------------------------

    async def run(self) -> Results:
        started = self.wire.clock.monotonic()
        tel = asyncio.create_task(self.telemetry())
        checks: list[tuple[Callable[[], Awaitable[None]], tuple[str, ...]]] = [
            (
                self.check_identification,
                (
                    "ST-APP-01",
                    "ST-APP-02",
                    "ST-LINK-03",
                    "ST-LINK-08",
                    "ST-LINK-14",
                    "ST-LINK-15",
                    "ST-LINK-02",
                    "ST-APP-21",
                    "ST-LINK-16",
                    "ST-APP-16",
                    "ST-LINK-11",
                    "ST-LINK-09",
                    "ST-APP-04",
                    "ST-APP-05",
                    "ST-APP-06",
                    "ST-BOOT-02",
                ),
            ),
            (
                self.check_start_and_stop,
                ("ST-LINK-10", "ST-LINK-07", "ST-APP-08", "ST-APP-18", "ST-APP-14", "ST-APP-15"),
            ),
            (self.check_refused_grant, ("ST-APP-09",)),
            (self.check_mismatch, ("ST-APP-10",)),
            (self.check_fault_while_granting, ("ST-APP-17", "ST-APP-19")),
            (self.check_telemetry_silence, ("ST-APP-12", "ST-APP-22")),
            (self.check_stop_flag, ("ST-APP-13",)),
            (self.check_vehicle_fault, ("ST-APP-17",)),
            (self.check_boot_mid_session, ("ST-BOOT-03",)),
            (self.check_link_silence, ("ST-LINK-13",)),
        ]
        try:
            for check, ids in checks:
                since = self.wire.mark()
                clean = True
                try:
                    await check()
                except Blocked as why:
                    clean = False
                    for rid in ids:
                        if not self.results.has(rid):
                            self.results.untestable(rid, str(why))
                if not clean or any(is_msg("FAULT")(e) for e in self.wire.received(since)):
                    await self.unplug()  # a fault stays until the vehicle leaves
        finally:
            tel.cancel()
            await asyncio.gather(tel, return_exceptions=True)
        self.tape_checks()
        self.results.seconds = self.wire.clock.monotonic() - started
        return self.results

    # --- the checks -------------------------------------------------------------------------------
    async def check_start_and_stop(self) -> None:
        r, wire = self.results, self.wire
        await self.identify()
        self.answer_grants = False
        since = wire.mark()
        grant = await self.start_session()
        again = await wire.expect(
            lambda e: e.raw == grant.raw and e.index > grant.index, T_REPLY + self.slack, since
        )
        gap = (again.t - grant.t) if again else None
        r.check(
            "ST-LINK-10",
            gap is not None and T_REPLY - self.slack <= gap <= T_REPLY + self.slack,
            "the unanswered GRANT was not sent again after T_REPLY"
            if gap is None
            else f"sent again after {gap:.2f} s, not {T_REPLY:g} s",
            wire.lines(since),
        )
        # while our reply is outstanding the station keeps answering ours
        reply = await wire.request(
            ChargeRequest(self.profile.imax, self.profile.vmax), within=T_REPLY / 2, retries=0
        )
        r.check(
            "ST-LINK-07",
            reply is not None and is_reply(reply, "REQ"),
            "REQ not answered while the station's GRANT was waiting",
            wire.lines(since),
        )
        latest = again or grant
        assert latest.decoded is not None
        await wire.reply(
            GrantReply(getattr(latest.decoded.message, "current_a", 0.0)), latest.decoded.seq
        )
        self.answer_grants = True
        answered_at = wire.mark() - 1
        power = await wire.expect(
            is_msg("POWER", "Q", on=1), T_VERIFY + 2 * T_REPLY + self.slack, since
        )
        early = power is not None and power.index < answered_at
        r.check(
            "ST-APP-08",
            not early,
            "POWER on=1 came before the vehicle confirmed the GRANT",
            wire.lines(since),
        )
        if self.profile.pack_v is None:
            raise Blocked(
                "no pack voltage at the port (give --pack-v): the station cannot power it"
            )
        if power is None:
            raise Blocked("the station did not power the port: " + why_not(wire, since))
        await wire.pause(0.3)
        since = wire.mark()
        await wire.send(Fault("overtemp", "warn", "Warm, still fine"))
        stopped = await wire.expect(
            lambda e: is_any(e, "FAULT", "STOP", "SUM") or is_msg("POWER", "Q", on=0)(e), 1.5, since
        )
        r.check(
            "ST-APP-18",
            stopped is None,
            "the station stopped for FAULT sev=warn",
            wire.lines(since),
        )
        since = wire.mark()
        reply = await self.ask(Stop("user"))
        r.check(
            "ST-APP-14", is_reply(reply, "STOP"), f"STOP answered {short(reply)}", wire.lines(since)
        )
        summary = await wire.expect(is_msg("SUM"), 2 * T_REPLY + 3.0, since)
        done = await wire.expect(is_msg("STATE", state="done"), 1.0, since)
        off = await wire.expect(is_msg("POWER", "Q", on=0), 0.1, since)
        order_ok = (
            summary is not None
            and off is not None
            and done is not None
            and off.index < summary.index < done.index
        )
        r.check(
            "ST-APP-14", order_ok, "not POWER on=0, then SUM, then STATE done", wire.lines(since)
        )
        reason = value(summary, "reason")
        r.check(
            "ST-APP-15",
            reason == "vehicle",
            f"SUM reason={reason} after the vehicle's STOP reason=user",
            wire.lines(since),
        )

    async def _fault_after(self, since: int, code: str, within: float, rid: str) -> None:
        """A FAULT with this code (codes separated by '|') within ``within`` s of ``since``."""
        r, wire = self.results, self.wire
        codes = code.split("|")

        def wanted(entry: Entry) -> bool:
            return is_msg("FAULT")(entry) and value(entry, "code") in codes

        fault = await wire.expect(wanted, within, since)
        r.check(
            rid, fault is not None, f"no FAULT code={code} within {within:.2f} s", wire.lines(since)
        )

    async def check_refused_grant(self) -> None:
        await self.identify()
        self.answer_grants = False
        since = self.wire.mark()
        grant = await self.start_session()
        assert grant.decoded is not None
        await self.wire.reply(Nak("E209", text="kit refuses"), grant.decoded.seq)
        self.answer_grants = True
        await self._fault_after(since, "link", 2 * T_REPLY + self.slack, "ST-APP-09")
        power = await self.wire.expect(is_msg("POWER", "Q", on=1), 1.0, since)
        self.results.check(
            "ST-APP-09", power is None, "POWER on=1 after a refused GRANT", self.wire.lines(since)
        )

    async def check_fault_while_granting(self) -> None:
        """The vehicle faults while the station's GRANT waits for its reply: the GRANT is
        abandoned, not sent again after the station's FAULT (checked on the whole tape)."""
        await self.identify()
        self.answer_grants = False
        since = self.wire.mark()
        await self.start_session()
        await self.wire.send(Fault("bms", "stop", "BMS opened its switch"))
        await self.wire.pause((N_RETRIES + 1) * T_REPLY + self.slack)
        await self._after_fault(since)
        self.answer_grants = True

    async def check_mismatch(self) -> None:
        if self.profile.pack_v is None:
            raise Blocked("no pack voltage at the port (give --pack-v)")
        await self.identify()
        self.tel_v = self.profile.rest_v * 0.85  # 15 % off: the pack is not what the vehicle says
        await self.wire.pause(T_TEL_PERIOD + 0.1)
        since = self.wire.mark()
        await self.start_session()
        await self._fault_after(since, "mismatch", T_VERIFY + T_REPLY + self.slack, "ST-APP-10")
        power = await self.wire.expect(is_msg("POWER", "Q", on=1), 0.5, since)
        self.results.check(
            "ST-APP-10",
            power is None,
            "POWER on=1 to a pack that does not match",
            self.wire.lines(since),
        )

    async def check_telemetry_silence(self) -> None:
        await self.charging()
        since = self.wire.mark()
        self.tel_on = False
        last_tel = max(
            (
                e.t
                for e in self.wire.entries
                if e.direction == "tx" and e.decoded and e.decoded.message.NAME == "TEL"
            ),
            default=self.wire.now(),
        )
        await self._fault_after(
            since, "silent", T_TEL + self.slack + 0.2 - (self.wire.now() - last_tel), "ST-APP-12"
        )
        await self._after_fault(since)
        # a faulted port is freed by T_LINK of silence: the next vehicle is identified anew
        await self.unplug()
        since = self.wire.mark()
        try:
            await self.identify()
        except Blocked as why:
            self.results.failed(
                "ST-APP-22", f"after T_LINK of silence: {why}", self.wire.lines(since)
            )
            return
        state = await self.wire.expect(is_msg("STATE", state="ready"), 1.0, since)
        self.results.check(
            "ST-APP-22",
            state is not None,
            "the port was not ready for the next vehicle",
            self.wire.lines(since),
        )

    async def _after_fault(self, since: int) -> None:
        r, wire = self.results, self.wire
        fault = await wire.expect(is_msg("FAULT"), 0.1, since)
        summary = await wire.expect(is_msg("SUM", reason="fault"), 1.0, since)
        off = await wire.expect(is_msg("POWER", "Q", on=0), 2 * T_REPLY, since)
        ok = (
            fault is not None
            and summary is not None
            and off is not None
            and fault.index < summary.index < off.index
        )
        r.check(
            "ST-APP-17", ok, "not FAULT, then SUM reason=fault, then POWER on=0", wire.lines(since)
        )

    async def check_stop_flag(self) -> None:
        await self.charging()
        since = self.wire.mark()
        self.tel_flags = 0x0040  # BMS_STOP
        await self._fault_after(since, "bms", T_TEL_PERIOD + self.slack + 0.2, "ST-APP-13")

    async def check_vehicle_fault(self) -> None:
        await self.charging()
        since = self.wire.mark()
        await self.wire.send(Fault("cellov", "stop", "Cell 3 at 4.31 V"))
        await self._after_fault(since)

    async def check_boot_mid_session(self) -> None:
        await self.charging()
        since = self.wire.mark()
        await self.wire.send(Boot("vehicle", SUPPORTED_VERSIONS))
        await self._fault_after(since, "link", 0.5 + self.slack, "ST-BOOT-03")
        summary = await self.wire.expect(is_msg("SUM", reason="fault"), 1.0, since)
        off = await self.wire.expect(is_msg("POWER", "Q", on=0), 2 * T_REPLY, since)
        self.results.check(
            "ST-BOOT-03",
            summary is not None and off is not None,
            "no SUM reason=fault and POWER on=0",
            self.wire.lines(since),
        )

    async def check_link_silence(self) -> None:
        await self.charging()
        since = self.wire.mark()
        self.wire.muted = True
        silent_from = self.wire.clock.monotonic()
        # `silent` at T_LINK; or `link` sooner, when a GRANT the station sent meanwhile (a new
        # share of its budget) went unanswered (§3.7): either way the switch opened in time.
        await self._fault_after(since, "silent|link", T_LINK + self.slack + 0.2, "ST-LINK-13")
        rest = silent_from + T_LINK + self.slack + 0.2 - self.wire.clock.monotonic()
        await self.wire.pause(max(0.0, rest))
        self.wire.muted = False
        since = self.wire.mark()
        reply = await self.ask(self.profile.battery())
        self.results.check(
            "ST-LINK-13",
            is_nak(reply, "E208"),
            f"after T_LINK the station still knew the vehicle: BATT got {short(reply)}",
            self.wire.lines(since),
        )

    # --- over the whole tape ----------------------------------------------------------------------

    def tape_checks(self) -> None:
        w, r = self.wire, self.results
        well_formed(w, r, "ST-LINK-01", "station")
        replies_echo(w, r, "ST-LINK-04")
        numbering(w, r, "ST-LINK-05")
        one_outstanding(w, r, "ST-LINK-06", self.slack)
        heartbeat(w, r, "ST-LINK-12", self.slack)
        self._grants_within_limits()
        self._nothing_after_fault()
        self._one_summary()

    def _grants_within_limits(self) -> None:
        p = self.profile
        grants = [e for e in self.wire.received() if is_msg("GRANT", "Q")(e)]
        for e in grants:
            g = e.decoded.message if e.decoded is not None else None
            if not isinstance(g, Grant):
                continue
            if g.current_a > p.imax + 1e-6 or g.voltage_v > p.vmax + 1e-6:
                self.results.failed(
                    "ST-APP-07",
                    f"GRANT i={g.current_a:g} v={g.voltage_v:g} above BATT "
                    f"imax={p.imax:g} vmax={p.vmax:g}",
                    self.wire.around(e.index),
                )
                return
        if grants:
            self.results.passed("ST-APP-07")

    def _nothing_after_fault(self) -> None:
        faulted = False
        seen = False
        for e in self.wire.entries:
            d = e.decoded
            if d is None:
                continue
            if e.direction == "tx" and d.message.NAME in ("HELLO", "BOOT"):
                faulted = False
            elif e.direction == "rx" and d.message.NAME == "FAULT" and d.message.severity == "stop":  # type: ignore[attr-defined]
                faulted, seen = True, True
            elif (
                faulted
                and e.direction == "rx"
                and d.kind == "Q"
                and (d.message.NAME == "GRANT" or is_msg("POWER", "Q", on=1)(e))
            ):
                self.results.failed(
                    "ST-APP-19",
                    f"{d.message.NAME} sent after the station's FAULT",
                    self.wire.around(e.index, 8),
                )
                return
        if seen:
            self.results.passed("ST-APP-19")

    def _one_summary(self) -> None:
        sums = 0
        seen = False
        for e in self.wire.entries:
            d = e.decoded
            if d is None:
                continue
            if e.direction == "rx" and d.kind == "Q" and d.message.NAME == "GRANT" and sums == 0:
                continue
            if e.direction == "tx" and d.message.NAME in ("HELLO", "REQ"):
                sums = 0
            elif e.direction == "rx" and d.message.NAME == "SUM":
                sums += 1
                seen = True
                if sums > 1:
                    self.results.failed(
                        "ST-APP-20", "a second SUM for one session", self.wire.around(e.index, 8)
                    )
                    return
        if seen:
            self.results.passed("ST-APP-20")
