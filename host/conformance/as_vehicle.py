"""The kit as a vehicle: what it declares, how it identifies, starts a session and leaves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from firmware.pevlink.codec import Decoded
from firmware.pevlink.messages import (
    Battery,
    Boot,
    ChargeRequest,
    GrantReply,
    Hello,
    Message,
    PowerReply,
    StopReply,
    Telemetry,
)
from firmware.pevlink.timers import T_LINK, T_REPLY, T_TEL_PERIOD, T_VERIFY
from firmware.pevlink.vocabulary import SUPPORTED_VERSIONS
from host.conformance.common import Blocked, is_reply, name_of, short
from host.conformance.report import Results
from host.conformance.wire import Entry, Wire, is_msg

Starter = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class VehicleProfile:
    """The vehicle the kit declares, and the pack the station will find behind it."""

    vnom: float = 36.0
    vmax: float = 42.0
    vmin: float = 30.0
    cells: int = 10
    cap_wh: float = 500.0
    imax: float = 4.0
    iend: float | None = None
    """Where its BMS ends the charge (BATT iend, PEV Link 1.2); None: not sent, as in 1.1."""
    soc: float = 40.0
    temp: float = 25.0
    pack_v: float | None = None
    """The voltage at the port once the switch closes; None when no pack is wired to the port."""

    def battery(self, **changes: float) -> Battery:
        values = {"v_nom_v": self.vnom, "v_max_v": self.vmax, "v_min_v": self.vmin, **changes}
        return Battery(
            "NMC",
            self.cells,
            values["v_nom_v"],
            values["v_max_v"],
            values["v_min_v"],
            self.cap_wh,
            self.imax,
            0.5,
            0.0,
            45.0,
            self.soc,
            self.temp,
            i_end_a=self.iend,
        )

    @property
    def rest_v(self) -> float:
        return self.pack_v if self.pack_v is not None else self.vnom


class KitVehicle:
    """The vehicle the kit plays against a station under test."""

    def __init__(
        self,
        wire: Wire,
        profile: VehicleProfile,
        *,
        start: Starter | None,
        start_wait_s: float = 60.0,
        slack_s: float = 0.25,
    ) -> None:
        self.wire = wire
        self.profile = profile
        self.start = start
        self.start_wait_s = start_wait_s
        self.slack = slack_s
        self.results = Results("station")
        self.tel_on = False
        self.tel_current = 0.0
        self.tel_flags = 0
        self.tel_v: float | None = None
        self.answer_grants = True
        wire.auto["POWER"] = self._answer_power
        wire.auto["STOP"] = lambda d: StopReply()
        wire.auto["GRANT"] = self._answer_grant

    def _answer_power(self, decoded: Decoded) -> Message | None:
        on = getattr(decoded.message, "on", 0)
        return PowerReply(round(self.profile.rest_v, 2) if on and self.profile.pack_v else 0.0)

    def _answer_grant(self, decoded: Decoded) -> Message | None:
        if not self.answer_grants:
            return None
        return GrantReply(getattr(decoded.message, "current_a", 0.0))

    async def telemetry(self) -> None:
        """TEL a little more often than T_TEL_PERIOD while ``tel_on``, as the vehicle must."""
        while True:
            if self.tel_on and not self.wire.muted:
                p = self.profile
                v = self.tel_v if self.tel_v is not None else p.rest_v
                await self.wire.send(
                    Telemetry(p.soc, round(v, 2), self.tel_current, p.temp, self.tel_flags)
                )
            await self.wire.pause(T_TEL_PERIOD * 0.9)

    async def ask(self, message: Message | bytes) -> Entry:
        reply = await self.wire.request(message, within=T_REPLY + self.slack)
        if reply is None:
            raise Blocked(f"the station did not answer {name_of(message)}")
        return reply

    def hello(self, versions: tuple[int, ...] = SUPPORTED_VERSIONS) -> Hello:
        return Hello(versions, "ebike", "PEV Link kit", "Conformance vehicle", "KIT-1", "1.1")

    async def identify(self) -> None:
        """BOOT, HELLO, BATT, REQ, with telemetry from HELLO on: the port is READY."""
        self.tel_on = False
        self.tel_current, self.tel_flags, self.tel_v = 0.0, 0, None
        await self.wire.send(Boot("vehicle", SUPPORTED_VERSIONS))
        hello = await self.ask(self.hello())
        if not is_reply(hello, "HELLO"):
            raise Blocked(f"HELLO refused: {short(hello)}")
        self.tel_on = True
        batt = await self.ask(self.profile.battery())
        if not is_reply(batt, "BATT"):
            raise Blocked(f"BATT refused: {short(batt)}")
        req = await self.ask(ChargeRequest(self.profile.imax, self.profile.vmax))
        if not is_reply(req, "REQ"):
            raise Blocked(f"REQ refused: {short(req)}")

    async def unplug(self) -> None:
        """Silence for T_LINK and a little more: the station must take the vehicle for gone."""
        self.wire.muted = True
        await self.wire.pause(T_LINK + 2 * self.slack + 0.5)
        self.wire.muted = False
        self.tel_on = False

    async def start_session(self) -> Entry:
        """Ask for a session and wait for the station's GRANT (answered or not, per the caller)."""
        if self.start is None:
            raise Blocked("no way to start a session (give --start-command)")
        since = self.wire.mark()
        await self.start()
        grant = await self.wire.expect(is_msg("GRANT", "Q"), self.start_wait_s, since)
        if grant is None:
            raise Blocked("the station sent no GRANT after the session was started")
        return grant

    async def charging(self) -> None:
        """Identified, started, granted and powered."""
        self.answer_grants = True
        await self.identify()
        since = self.wire.mark()
        await self.start_session()
        if self.profile.pack_v is None:
            raise Blocked(
                "no pack voltage at the port (give --pack-v): the station cannot power it"
            )
        power = await self.wire.expect(
            is_msg("POWER", "Q", on=1), T_VERIFY + 2 * T_REPLY + self.slack, since
        )
        if power is None:
            raise Blocked("the station did not power the port: " + why_not(self.wire, since))
        await self.wire.pause(0.2)

    def last(self, entry: Entry) -> list[str]:
        return self.wire.around(entry.index, 3)


def why_not(wire: Wire, since: int) -> str:
    for e in wire.received(since):
        if is_msg("FAULT")(e) or is_msg("STATE", state="fault")(e):
            return short(e)
    return "no POWER on=1 and no FAULT"


__all__ = ["Blocked", "KitVehicle", "Starter", "VehicleProfile"]
