"""Station checks of the link layer and of identification, before any session (§2, §3.3-3.5)."""

from __future__ import annotations

from dataclasses import replace

from firmware.pevlink.codec import encode
from firmware.pevlink.framing import crc16
from firmware.pevlink.messages import Boot, ChargeRequest
from firmware.pevlink.timers import T_REPLY
from firmware.pevlink.vocabulary import SUPPORTED_VERSIONS
from host.conformance.as_vehicle import KitVehicle
from host.conformance.common import (
    Blocked,
    any_reply,
    body_of,
    is_nak,
    is_reply,
    short,
    value,
    with_crc,
)
from host.conformance.wire import is_msg


class LinkChecks(KitVehicle):
    """The link layer and identification, checked on a station before any session."""

    async def check_end_above_imax(self) -> None:
        """ST-APP-05 for the cross-field rule of 1.2, ``iend <= imax`` (§3.4): a station that reads
        ``iend`` refuses with ``NAK E206 field=iend accept=<imax>``; one of 1.1 ignores the field
        (§6.2) and takes the BATT, which is not a failure."""
        imax = self.profile.imax
        above = min(50.0, imax + 1.0)  # within iend's range, so only the cross-field rule applies
        if above <= imax:
            return
        declared = replace(self.profile.battery(), i_end_a=imax)
        reply = await self.ask(body_of(declared, iend=f"{above:g}"))
        if is_reply(reply, "BATT"):
            return
        self.results.check(
            "ST-APP-05",
            is_nak(reply, "E206", field="iend") and value(reply, "accept") == f"{imax:g}",
            f"BATT iend={above:g} above imax={imax:g}: {short(reply)}, "
            f"not NAK E206 field=iend accept={imax:g}",
            self.last(reply),
        )

    async def check_identification(self) -> None:
        r, wire = self.results, self.wire
        await wire.send(Boot("vehicle", SUPPORTED_VERSIONS))
        reply = await self.ask(self.profile.battery())
        r.check(
            "ST-APP-01",
            is_nak(reply, "E208"),
            f"BATT before HELLO: {short(reply)}, not NAK E208",
            self.last(reply),
        )
        reply = await self.ask(self.hello((2,)))
        r.check(
            "ST-APP-02",
            is_nak(reply, "E207", field="ver") and "1" in str(value(reply, "accept")),
            f"HELLO ver=2: {short(reply)}, not NAK E207 field=ver accept=1",
            self.last(reply),
        )
        # link errors are never answered: a wrong checksum, a line too long
        for rid, line, what in (
            (
                "ST-LINK-08",
                with_crc(b"Q41 " + body_of(self.hello()), "0000"),
                "a HELLO with a wrong checksum",
            ),
            (
                "ST-LINK-03",
                with_crc(b"Q42 HELLO ver=1 type=ebike maker=Kit model=" + b"x" * 190),
                "a 250-byte HELLO",
            ),
        ):
            since = wire.mark()
            await wire.send_raw(line)
            answer = await wire.expect(
                any_reply,
                T_REPLY + self.slack,
                since,
            )
            r.check(rid, answer is None, f"{what} was answered", wire.lines(since))
        # noise and a half line, then a good request
        since = wire.mark()
        await wire.send_raw(b"\x00\xff noise $Q43 HEL")
        reply = await self.ask(self.hello((1, 2)))
        r.check(
            "ST-LINK-14",
            is_reply(reply, "HELLO"),
            f"after noise: {short(reply)}",
            wire.lines(since),
        )
        if is_reply(reply, "HELLO"):
            r.check(
                "ST-APP-02",
                value(reply, "version") == 1,
                "HELLO ver=1,2 not answered ver=1",
                wire.lines(since),
            )
        # lower-case hex, a bare LF, unknown fields, another field order
        for body, what in (
            (b"Q44 HELLO type=ebike ver=1 model=Kit maker=Kit", "fields in another order"),
            (b"Q45 HELLO ver=1 type=ebike maker=Kit model=Kit", "lower-case checksum"),
            (b"Q46 HELLO ver=1 type=ebike maker=Kit model=Kit", "a bare LF"),
            (b"Q0a HELLO ver=1 type=ebike maker=Kit model=Kit", "a lower-case sequence number"),
        ):
            since = wire.mark()
            crc = f"{crc16(body):04x}" if "lower-case checksum" in what else None
            end = b"\n" if "bare LF" in what else b"\r\n"
            await wire.send_raw(with_crc(body, crc, end))
            answer = await wire.expect(is_msg("HELLO", "R"), T_REPLY + self.slack, since)
            r.check(
                "ST-LINK-02",
                answer is not None,
                f"a HELLO with {what} was not answered",
                wire.lines(since),
            )
        since = wire.mark()
        await wire.send_raw(with_crc(b"Q47 HELLO ver=1 type=ebike maker=Kit model=Kit colour=red"))
        answer = await wire.expect(is_msg("HELLO", "R"), T_REPLY + self.slack, since)
        r.check(
            "ST-APP-21",
            answer is not None,
            "a HELLO with an unknown field was not accepted",
            wire.lines(since),
        )
        reply = await self.ask(b"PING")
        r.check(
            "ST-APP-21",
            is_nak(reply, "E200"),
            f"unknown request PING: {short(reply)}, not NAK E200",
            self.last(reply),
        )
        since = wire.mark()
        await wire.send_raw(with_crc(b"Q48 HELLO ver=1 type=boat maker=Kit model=Kit"))
        answer = await wire.expect(any_reply, T_REPLY + self.slack, since)
        r.check(
            "ST-APP-21",
            answer is not None and is_nak(answer, "E205"),
            "type=boat not refused with E205",
            wire.lines(since),
        )
        since = wire.mark()
        await wire.send_raw(with_crc(b"Q49 HELLO ver=1 type=ebike maker=Kit%G1 model=Kit"))
        answer = await wire.expect(any_reply, T_REPLY + self.slack, since)
        r.check(
            "ST-LINK-15",
            answer is not None and is_nak(answer, "E203"),
            "maker=Kit%G1 not refused with E203",
            wire.lines(since),
        )
        since = wire.mark()
        await wire.send_raw(with_crc(b"Q00 STOP reason=user"))
        answer = await wire.expect(any_reply, T_REPLY + self.slack, since)
        r.check(
            "ST-LINK-16",
            answer is not None and answer.decoded is not None and answer.decoded.seq == 0,
            "a request numbered 00 was not answered R00",
            wire.lines(since),
        )
        r.check(
            "ST-APP-16",
            answer is not None and is_reply(answer, "STOP"),
            "STOP with no session not answered R STOP",
            wire.lines(since),
        )
        # a retransmitted request gets the same reply
        hello = await self.ask(self.hello())
        if not is_reply(hello, "HELLO"):
            raise Blocked(f"HELLO refused: {short(hello)}")
        self.tel_on = True
        since = wire.mark()
        line = encode(self.profile.battery(), wire.next_seq())
        await wire.send_raw(line)
        first = await wire.expect(any_reply, T_REPLY + self.slack, since)
        await wire.send_raw(line)
        second = await wire.expect(
            any_reply,
            T_REPLY + self.slack,
            (first.index + 1) if first else since,
        )
        r.check(
            "ST-LINK-11",
            first is not None and second is not None and first.raw == second.raw,
            "a retransmitted BATT was not answered with the same reply",
            wire.lines(since),
        )
        reply = await self.ask(ChargeRequest(self.profile.imax, self.profile.vmax + 5))
        r.check(
            "ST-APP-06",
            is_nak(reply, "E206", field="v"),
            f"REQ v above BATT vmax: {short(reply)}",
            self.last(reply),
        )
        since = wire.mark()
        await wire.send_raw(with_crc(f"Q{wire.next_seq():02X} REQ i=60 v=42".encode()))
        answer = await wire.expect(any_reply, T_REPLY + self.slack, since)
        r.check(
            "ST-LINK-09",
            answer is not None and is_nak(answer, "E202", field="i"),
            "REQ i=60 not refused with NAK E202 field=i",
            wire.lines(since),
        )
        reply = await self.ask(body_of(self.profile.battery(), vnom=f"{self.profile.vmin - 1:g}"))
        r.check(
            "ST-APP-05",
            is_nak(reply, "E206"),
            f"BATT vnom below vmin: {short(reply)}, not NAK E206",
            self.last(reply),
        )
        await self.check_end_above_imax()
        reply = await self.ask(self.profile.battery(v_max_v=200.0))
        if is_reply(reply, "BATT"):
            r.untestable("ST-APP-04", "the station accepts a 200 V pack")
        else:
            r.check(
                "ST-APP-04",
                is_nak(reply, "E210", field="vmax") and bool(value(reply, "accept")),
                f"BATT vmax=200: {short(reply)}",
                self.last(reply),
            )
        reply = await self.ask(b"GRANT i=1 v=42")
        r.check(
            "ST-APP-01",
            is_nak(reply, "E208"),
            f"GRANT sent to a station: {short(reply)}, not NAK E208",
            self.last(reply),
        )
        # BOOT forgets the vehicle: BATT is again before HELLO
        await wire.send(Boot("vehicle", SUPPORTED_VERSIONS))
        await wire.pause(0.1)
        reply = await self.ask(ChargeRequest(1.0, self.profile.vmax))
        r.check(
            "ST-BOOT-02",
            is_nak(reply, "E208"),
            f"REQ right after BOOT: {short(reply)}, not NAK E208",
            self.last(reply),
        )
