"""Vehicle checks of identification and of the link layer, before power is on (§2, §3.3)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from firmware.pevlink.codec import encode
from firmware.pevlink.framing import crc16
from firmware.pevlink.messages import Boot, ChargeRequestReply, Grant, Hello, Nak, StationState
from firmware.pevlink.timers import I_BREAK_A, N_RETRIES, T_REPLY, T_TEL_PERIOD
from firmware.pevlink.vocabulary import SUPPORTED_VERSIONS
from host.conformance.as_station import KitStation
from host.conformance.common import Blocked, any_reply, is_nak, is_reply, with_crc
from host.conformance.wire import Entry, is_msg


class LinkChecks(KitStation):
    """Identification and the link layer, checked on a vehicle before power is on."""

    async def check_identification(self) -> None:
        r, wire = self.results, self.wire
        first = await wire.expect(lambda e: e.decoded is not None, self.plug_wait_s, 0)
        if first is None:
            if wire.received():
                raise Blocked("no line from the vehicle passed the checks of §2.5 (see VH-LINK-01)")
            r.failed("VH-APP-01", f"no line from the vehicle within {self.plug_wait_s:g} s")
            raise Blocked("the vehicle sent nothing")
        assert first.decoded is not None
        name = first.decoded.message.NAME
        if name == "BOOT":
            r.passed("VH-BOOT-01")
        elif name in ("HB", "TEL"):
            r.untestable("VH-BOOT-01", "the vehicle was already running; start it after the kit")
            await wire.send(Boot("station", SUPPORTED_VERSIONS))
        else:
            r.failed("VH-BOOT-01", f"the first line was {name}, not BOOT", wire.around(first.index))
        hello = await wire.expect(
            lambda e: e.decoded is not None and e.decoded.kind == "Q", 3.0, first.index
        )
        if hello is None:
            r.failed("VH-APP-01", "no request after BOOT", wire.lines(first.index))
            raise Blocked("the vehicle sent no HELLO")
        r.check(
            "VH-APP-01",
            is_msg("HELLO", "Q")(hello),
            "the first request was not HELLO",
            wire.around(hello.index),
        )
        # unanswered: the identical line after T_REPLY, at most N_RETRIES times
        copies = [hello]
        for _ in range(N_RETRIES + 1):
            again = await wire.expect(
                lambda e: e.raw == hello.raw, T_REPLY + self.slack, copies[-1].index + 1
            )
            if again is None:
                break
            copies.append(again)
        gaps = [b.t - a.t for a, b in itertools.pairwise(copies)]
        r.check(
            "VH-LINK-10",
            len(copies) == N_RETRIES + 1 and all(abs(g - T_REPLY) <= self.slack for g in gaps),
            f"{len(copies)} identical HELLO lines, "
            f"{', '.join(f'{g:.2f}' for g in gaps) or 'none'} s apart "
            f"(expected {N_RETRIES + 1}, {T_REPLY:g} s apart)",
            wire.lines(hello.index),
        )
        # no version in common: the vehicle must not go on
        next_hello = await wire.expect(is_msg("HELLO", "Q"), 3.0, copies[-1].index + 1)
        if next_hello is not None:
            assert next_hello.decoded is not None
            since = wire.mark()
            await wire.reply(
                Nak("E207", "ver", "9", "no protocol version in common"), next_hello.decoded.seq
            )
            batt = await wire.expect(is_msg("BATT", "Q"), 2.0, since)
            r.check("VH-APP-02", batt is None, "BATT after NAK E207 to HELLO", wire.lines(since))
        else:
            r.untestable("VH-APP-02", "the vehicle did not try HELLO again")
        # the station restarts: the vehicle starts over with HELLO, and this time it is answered
        since = wire.mark()
        self.answer_hello = True
        await wire.send(Boot("station", SUPPORTED_VERSIONS))
        again = await wire.expect(is_msg("HELLO", "Q"), 2.0 + self.slack, since)
        r.check(
            "VH-BOOT-02", again is not None, "no HELLO after the station's BOOT", wire.lines(since)
        )
        if again is None:
            raise Blocked("the vehicle did not identify itself again")
        # BATT and REQ; while its REQ waits, the vehicle must answer our GRANT
        wire.auto.pop("REQ")
        try:
            req = await wire.expect(is_msg("REQ", "Q"), 3.0 + N_RETRIES * T_REPLY, since)
            if req is None or self.battery is None:
                raise Blocked("the vehicle did not send BATT and REQ")
            assert req.decoded is not None
            self.wanted_a = getattr(req.decoded.message, "current_a", 0.0)
            g = self.grant_a()
            grant = await self.wire.request(
                Grant(g, self.battery.v_max_v, "kit"), within=0.3, retries=0
            )
            r.check(
                "VH-LINK-07",
                grant is not None,
                "GRANT not answered while the vehicle's REQ waited",
                wire.lines(since),
            )
            await wire.reply(ChargeRequestReply("granted"), req.decoded.seq)
        finally:
            wire.auto["REQ"] = self._on_request
        if grant is not None:
            self._check_grant_reply(grant, g)
        granted_at = wire.now()
        await self.probes(g)
        # granted, not powered; the STATE notice says charging: nothing may be drawn
        await wire.send(StationState("charging", "Charging"))
        await wire.pause(T_TEL_PERIOD * 2 + 0.2)
        tels = self.tels(granted_at)
        if not tels:
            for rid in ("VH-APP-06", "VH-APP-07"):
                r.untestable(rid, "no TEL: the kit cannot see the current")
        else:
            worst = max(t.current_a for t in tels)
            r.check(
                "VH-APP-06",
                worst <= I_BREAK_A,
                f"TEL i={worst:g} A before POWER on=1",
                wire.lines(since),
            )
            r.check(
                "VH-APP-07",
                worst <= I_BREAK_A,
                f"TEL i={worst:g} A after STATE charging without POWER",
                wire.lines(since),
            )

    def _check_grant_reply(self, entry: Entry, g: float) -> None:
        d = entry.decoded
        ok = (
            d is not None
            and d.message.NAME == "GRANT"
            and getattr(d.message, "current_a", 1e9) <= g + 1e-6
        )
        self.results.check(
            "VH-APP-05", ok, f"GRANT i={g:g} answered {entry.text()}", self.wire.around(entry.index)
        )

    async def probes(self, g: float) -> None:
        r, wire = self.results, self.wire
        assert self.battery is not None
        v = f"{self.battery.v_max_v:g}"
        gtext = f"{g:g}"

        async def probe(
            rid: str, line: bytes, expect: Callable[[Entry | None], bool], what: str
        ) -> None:
            since = wire.mark()
            await wire.send_raw(line)
            reply = await wire.expect(
                any_reply,
                T_REPLY + self.slack,
                since,
            )
            r.check(rid, expect(reply), what, wire.lines(since))

        def seq() -> str:
            return f"{wire.next_seq():02X}"

        reply = await self._ask(Hello((1,), "ebike", "Kit", "Kit"))
        r.check(
            "VH-APP-12",
            reply is not None and is_nak(reply, "E208"),
            "HELLO sent to a vehicle not refused with E208",
            wire.lines(wire.mark() - 3),
        )
        reply = await self._ask(b"PING")
        r.check(
            "VH-APP-13",
            reply is not None and is_nak(reply, "E200"),
            "unknown request PING not refused with E200",
            wire.lines(wire.mark() - 3),
        )
        await probe(
            "VH-APP-13",
            with_crc(f"Q{seq()} GRANT i={gtext} v={v} colour=red".encode()),
            lambda e: e is not None and is_reply(e, "GRANT"),
            "a GRANT with an unknown field was not accepted",
        )
        await probe(
            "VH-LINK-09",
            with_crc(f"Q{seq()} GRANT i=60 v={v}".encode()),
            lambda e: e is not None and is_nak(e, "E202", "i"),
            "GRANT i=60 not refused with NAK E202 field=i",
        )
        await probe(
            "VH-LINK-08",
            with_crc(f"Q{seq()} GRANT i={gtext} v={v}".encode(), "0000"),
            lambda e: e is None,
            "a GRANT with a wrong checksum was answered",
        )
        await probe(
            "VH-LINK-03",
            with_crc(f"Q{seq()} GRANT i={gtext} v={v} why=".encode() + b"x" * 190),
            lambda e: e is None,
            "a 240-byte GRANT was answered",
        )
        await probe(
            "VH-LINK-14",
            b"\x00\xffnoise $Q7 GRA" + with_crc(f"Q{seq()} GRANT i={gtext} v={v}".encode()),
            lambda e: e is not None and is_reply(e, "GRANT"),
            "a GRANT after noise and a half line was not answered",
        )
        body = f"Q{seq()} GRANT i={gtext} v={v}".encode()
        await probe(
            "VH-LINK-02",
            with_crc(body, f"{crc16(body):04x}"),
            lambda e: e is not None and is_reply(e, "GRANT"),
            "a GRANT with a lower-case checksum was not answered",
        )
        await probe(
            "VH-LINK-02",
            with_crc(f"Q{seq()} GRANT i={gtext} v={v}".encode(), end=b"\n"),
            lambda e: e is not None and is_reply(e, "GRANT"),
            "a GRANT ended by a bare LF was not answered",
        )
        await probe(
            "VH-LINK-02",
            with_crc(f"Q{seq().lower()} GRANT v={v} i={gtext}".encode()),
            lambda e: e is not None and is_reply(e, "GRANT"),
            "a GRANT with a lower-case number and fields in another order was not answered",
        )
        await probe(
            "VH-LINK-15",
            with_crc(f"Q{seq()} GRANT i={gtext} v={v} why=a%G1".encode()),
            lambda e: e is not None and is_nak(e, "E203"),
            "why=a%G1 not refused with E203",
        )
        await probe(
            "VH-LINK-16",
            with_crc(b"Q00 PING"),
            lambda e: e is not None and e.decoded is not None and e.decoded.seq == 0,
            "a request numbered 00 was not answered R00",
        )
        since = wire.mark()
        line = encode(Grant(g, self.battery.v_max_v, "kit"), wire.next_seq())
        await wire.send_raw(line)
        first = await wire.expect(any_reply, T_REPLY + self.slack, since)
        await wire.send_raw(line)
        second = await wire.expect(
            any_reply,
            T_REPLY + self.slack,
            first.index + 1 if first else since,
        )
        r.check(
            "VH-LINK-11",
            first is not None and second is not None and first.raw == second.raw,
            "a retransmitted GRANT was not answered with the same reply",
            wire.lines(since),
        )
