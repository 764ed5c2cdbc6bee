"""What a port does with what its vehicle says (HELLO, BATT, REQ, STOP, TEL, FAULT, BOOT).

A message that makes a live session unsafe (a new HELLO, a battery profile this port cannot
supply, a BOOT) trips the port first, at once. HELLO and BATT, which replace what the station
knows of the vehicle, then wait for the port's lock, so they never change a profile under an
action that is using it; one that finds the port busy for longer than the vehicle's reply timer
allows is answered NAK BUSY (E209), and the vehicle retries after its timer, as the specification
says. REQ and the notices (TEL, FAULT, BOOT) need no await and are handled at once, in line order.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from firmware.pevlink import (
    Battery,
    BatteryReply,
    Boot,
    ChargeRequest,
    ChargeRequestReply,
    ErrorCode,
    Fault,
    Hello,
    HelloReply,
    Message,
    ProtocolError,
    Stop,
    StopReply,
    Telemetry,
)
from firmware.pevlink.rules import check_battery, check_request, common_version
from firmware.pevlink.timers import T_REPLY
from firmware.station.safety import Trip
from firmware.station.states import LIVE_STATES, POWERLESS, SESSION_STATES, PortEvent, PortState
from hal.clock import wait_for

if TYPE_CHECKING:
    from firmware.station.port import PortController

log = logging.getLogger(__name__)

LOCK_WAIT_S = T_REPLY * 0.6
"""How long a vehicle's request may wait for a busy port before it is told BUSY."""

REQUEST_WORDS = {
    PortState.AUTHORIZING: "wait_power",
    PortState.PAYMENT: "wait_payment",
    PortState.WAITING: "wait_power",
    PortState.STARTING: "granted",
    PortState.CHARGING: "granted",
}


class Conversation:
    """The station's side of one port's PEV Link conversation."""

    def __init__(self, port: PortController) -> None:
        self.port = port

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """The port's lock within the vehicle's patience, or NAK BUSY."""
        port = self.port
        try:
            await wait_for(port.clock, port.lock.acquire(), LOCK_WAIT_S)
        except TimeoutError:
            raise ProtocolError(ErrorCode.BUSY, "the port is busy; retry") from None
        try:
            yield
        finally:
            port.lock.release()

    def _powered(self) -> bool:
        """A session is under way (the supervisor trips a switch closed outside one)."""
        return self.port.state in SESSION_STATES

    # --- requests ---------------------------------------------------------------------------------

    async def on_request(self, message: Message) -> Message:
        if isinstance(message, Hello):
            return await self._hello(message)
        if isinstance(message, Battery):
            return await self._battery(message)
        if isinstance(message, ChargeRequest):
            return await self._charge_request(message)
        if isinstance(message, Stop):
            return self._stop(message)
        raise ProtocolError(ErrorCode.WRONG_STATE, f"{message.NAME} is not accepted here")

    async def _hello(self, hello: Hello) -> Message:
        port = self.port
        version = common_version(hello)
        if self._powered():
            port.trip(Trip("link", "The vehicle restarted its connection"))
        async with self._turn():
            port.hello = hello
            port.battery = None
            port.request = None
            if port.state == PortState.FAULT and port.vehicle_gone:
                port.reset_fault()  # a new vehicle identified itself: as good as a reset
            port.move(PortEvent.IDENTIFIED)
        return HelloReply(version, port.station_name[:32], port.port_id)

    async def _battery(self, battery: Battery) -> Message:
        port = self.port
        spec = port.spec
        try:
            check_battery(port.hello, battery, spec.v_min_v, spec.v_max_v)
        except ProtocolError as err:
            if err.field not in ("vmax", "vmin"):
                raise
            if self._powered():
                port.trip(
                    Trip(
                        "mismatch",
                        f"The vehicle changed its battery to one this port cannot charge: {err}",
                    )
                )
            else:
                async with self._turn():
                    self._refuse(battery, err.field)
            raise
        async with self._turn():
            old = port.battery
            if port.state in LIVE_STATES and old is not None and battery.v_max_v > old.v_max_v:
                # The pack was verified against its old limit; a higher one is not that pack.
                port.trip(
                    Trip(
                        "mismatch",
                        f"The vehicle raised its maximum voltage to {battery.v_max_v:g} V "
                        "during the charge",
                    )
                )
                raise ProtocolError(ErrorCode.WRONG_STATE, "vmax cannot rise mid-session")
            port.battery = battery
            port.battery_at = port.clock.monotonic()
            port.move(PortEvent.BATTERY_OK)
        return BatteryReply(spec.v_min_v, spec.v_max_v, spec.max_current_a, spec.max_power_w)

    def _refuse(self, battery: Battery, field: str) -> None:
        port, spec = self.port, self.port.spec
        if field == "vmax":
            port.battery = None
            text = (
                f"This port supplies and measures up to {spec.v_max_v:g} V; "
                f"the vehicle needs {battery.v_max_v:g} V"
            )
        else:
            text = (
                f"This port starts at {spec.v_min_v:g} V; the vehicle's pack goes down "
                f"to {battery.v_min_v:g} V"
            )
        elsewhere = port.ports_for(battery.v_min_v, battery.v_max_v)
        if elsewhere:  # e.g. a 126 V unicycle at an 84 V port, beside the high-voltage one
            names = ", ".join(str(i) for i in elsewhere[:-1])
            text += f": use port {f'{names} or ' if names else ''}{elsewhere[-1]}"
        if port.state != PortState.EMPTY:
            port.move(PortEvent.BATTERY_REFUSED, text)

    async def _charge_request(self, request: ChargeRequest) -> Message:
        port = self.port
        check_request(port.battery, request)
        # What the vehicle wants now, and the answer: no await, so atomic, and never held up by an
        # admission under way (the vehicle sends its REQ while the station may be admitting it).
        port.request = request
        port.move(PortEvent.REQUESTED)
        return ChargeRequestReply(REQUEST_WORDS.get(port.state, "wait_start"))

    def _stop(self, stop: Stop) -> Message:
        port = self.port
        reason = stop.reason if stop.reason != "user" else "vehicle"
        if port.session is not None:
            port.spawn(port.stop(reason, stop.text, by_vehicle=True))
        return StopReply()

    # --- notices ----------------------------------------------------------------------------------

    async def on_notice(self, message: Message) -> None:
        """Runs on the link's reader: never waits for the port's lock."""
        port = self.port
        if isinstance(message, Telemetry):
            port.telemetry = message
            port.last_tel_at = port.clock.monotonic()
            if port.state == PortState.EMPTY:
                port.move(PortEvent.SEEN)
            else:
                port.changed()
        elif isinstance(message, Fault):
            text = message.text or "The vehicle reported a fault"
            if message.severity == "stop" and (port.state in LIVE_STATES or port.relay_closed):
                port.trip(Trip(message.code, f"Vehicle fault: {text}"))
            elif message.severity == "warn":
                # Not a reason to stop, but the rider and the operator should see it.
                log.warning("port %d: vehicle warning %s: %s", port.port_id, message.code, text)
                port.warning = f"Vehicle warning: {text}"
                port.changed()
        elif isinstance(message, Boot):
            self._restarted()

    def _restarted(self) -> None:
        """The vehicle's BOOT: it starts over. Done at once, in line order, so that the lines it
        sends next (telemetry, HELLO) are not wiped by a late reaction to this one."""
        port = self.port
        port.link.reset()
        if port.state in LIVE_STATES or port.relay_closed:
            port.trip(Trip("link", "The vehicle restarted during the charge"))
        session = port.session
        if session is not None and port.state in POWERLESS:
            text = "The vehicle restarted before charging"
            if port.end_session(session, "vehicle", text):
                port.spawn(port.announce_end(session))
        if port.state not in LIVE_STATES:
            heard = port.link.last_rx
            port.forget_vehicle(keep_fault=True)
            # The BOOT is what we last heard: T_LINK of silence from it still frees the port.
            port.link.last_rx = heard
            port.move(PortEvent.RESTARTED)
