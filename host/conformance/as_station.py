"""The kit as a station: what its port offers, and the steps of a session it drives."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.pevlink.codec import Decoded
from firmware.pevlink.messages import (
    Battery,
    BatteryReply,
    ChargeRequestReply,
    Grant,
    HelloReply,
    Message,
    Power,
    StopReply,
    Telemetry,
)
from firmware.pevlink.timers import N_RETRIES, T_REPLY
from host.conformance.common import Blocked
from host.conformance.report import Results
from host.conformance.wire import Entry, Wire


@dataclass(frozen=True)
class PortOffer:
    """What the kit, as a station, says its port can do (wide: it takes any light vehicle)."""

    name: str = "pev-conformance"
    port: int = 1
    vmin: float = 6.0
    vmax: float = 200.0
    imax: float = 10.0
    pmax: float = 2000.0


def tolerance(grant_a: float) -> float:
    """§5: a vehicle may be over its grant by max(0.2 A, 10 %)."""
    return max(0.2, 0.1 * grant_a)


class KitStation:
    """The station the kit plays against a vehicle under test."""

    def __init__(
        self,
        wire: Wire,
        offer: PortOffer | None = None,
        *,
        plug_wait_s: float = 30.0,
        slack_s: float = 0.25,
    ) -> None:
        self.wire = wire
        self.offer = offer or PortOffer()
        self.plug_wait_s = plug_wait_s
        self.slack = slack_s
        self.results = Results("vehicle")
        self.battery: Battery | None = None
        self.wanted_a = 0.0
        self.ready_at: float | None = None
        self.answer_hello = False
        wire.auto["HELLO"] = self._on_hello
        wire.auto["BATT"] = self._on_battery
        wire.auto["REQ"] = self._on_request
        wire.auto["STOP"] = lambda d: StopReply()

    # --- the kit as a station ---------------------------------------------------------------------

    def _on_hello(self, decoded: Decoded) -> Message | None:
        if not self.answer_hello:
            return None
        if self.ready_at is None:
            self.ready_at = self.wire.now()
        return HelloReply(1, self.offer.name, self.offer.port)

    def _on_battery(self, decoded: Decoded) -> Message | None:
        assert isinstance(decoded.message, Battery)
        self.battery = decoded.message
        o = self.offer
        return BatteryReply(o.vmin, o.vmax, o.imax, o.pmax)

    def _on_request(self, decoded: Decoded) -> Message | None:
        self.wanted_a = getattr(decoded.message, "current_a", 0.0)
        return ChargeRequestReply("granted")

    def grant_a(self) -> float:
        b = self.battery
        if b is None:
            return 0.0
        return round(
            min(
                self.wanted_a or b.i_max_a, b.i_max_a, self.offer.imax, self.offer.pmax / b.v_max_v
            ),
            2,
        )

    async def _ask(self, message: Message | bytes, within: float | None = None) -> Entry | None:
        return await self.wire.request(message, within=within or T_REPLY + self.slack)

    async def _grant(self, current_a: float) -> Entry | None:
        assert self.battery is not None
        return await self._ask(Grant(current_a, self.battery.v_max_v, "kit"))

    def tels(self, since_t: float, until_t: float | None = None) -> list[Telemetry]:
        out = []
        for e in self.wire.received():
            d = e.decoded
            if (
                d is not None
                and isinstance(d.message, Telemetry)
                and e.t >= since_t
                and (until_t is None or e.t <= until_t)
            ):
                out.append(d.message)
        return out

    def any_tel(self) -> bool:
        return bool(self.tels(0.0))

    async def ready(self) -> None:
        """Identified, profile and request taken: wait (up to 3 s) for the vehicle to get there."""
        self.answer_hello = True
        deadline = self.wire.clock.monotonic() + 3.0 + N_RETRIES * T_REPLY
        while self.battery is None or self.wanted_a <= 0:
            if self.wire.clock.monotonic() > deadline:
                raise Blocked("the vehicle did not send HELLO, BATT and REQ")
            await self.wire.pause(0.05)

    async def powered(self) -> float:
        """A grant and POWER on=1; returns the grant, once the vehicle draws (or 2 s passed)."""
        g = self.grant_a()
        if await self._grant(g) is None or await self._ask(Power(1)) is None:
            raise Blocked("the vehicle did not answer GRANT and POWER on=1")
        await self.wire.pause(2.0)
        return g
