"""The link to the central system: connect, boot, heartbeat, statuses, and the outbox's delivery.

The uplink talks to the station only through its public surface: ``snapshot()``/``port_view``,
``events``, ``start``, ``stop``, ``reset``, ``set_budget`` and the ``on_start``/``on_end``
callbacks. The station charges by its own rules whether or not the central system is there.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.v16 import call
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from firmware.ocpp.authorize import Authorization
from firmware.ocpp.backoff import Backoff
from firmware.ocpp.client import StationChargePoint
from firmware.ocpp.config import OcppConfig
from firmware.ocpp.errors import LinkLost
from firmware.ocpp.outbox import Outbox, Queued
from firmware.ocpp.profiles import CappedPolicy, iso
from firmware.ocpp.sessions import Transactions
from firmware.ocpp.settings import Settings
from firmware.ocpp.smart import SmartCharging
from firmware.ocpp.status import ConnectorStatus, connector_status
from firmware.station.station import Station
from hal.clock import Clock, wait_for

log = logging.getLogger(__name__)

STATUS_POLL_S = 1.0
"""Statuses are also re-read this often: some (SuspendedEV) change without a port event."""
OUTBOX_POLL_S = 5.0
OUT_OF_SERVICE = "Out of service: set unavailable by the central system"


class Uplink:
    def __init__(
        self,
        config: OcppConfig,
        station: Station,
        clock: Clock,
        *,
        policy: CappedPolicy | None = None,
        firmware_version: str = "",
        restart: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.station = station
        self.clock = clock
        self.policy = policy
        self.firmware_version = firmware_version
        self.restart = restart
        self.outbox = Outbox(config.db_path)
        self.settings = Settings(config, self.outbox, len(station.ports))
        self.backoff = Backoff(config.backoff_min_s, config.backoff_max_s)
        self._state = "connecting"
        self.error: str | None = None

        self.cp: StationChargePoint | None = None
        self._reader: asyncio.Task[Any] | None = None
        self.tx = Transactions(self)
        self.auth = Authorization(self)
        self.smart = SmartCharging(station, clock, policy, self.tx.tx_start)
        self._sent: dict[int, ConnectorStatus] = {}
        self._booted = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- wiring ---------------------------------------------------------------------------------

    def attach(self) -> None:
        """Follow the station's sessions, after whatever else already follows them."""
        before_start, before_end = self.station.on_start, self.station.on_end

        def on_start(port: Any, session: Any) -> None:
            if before_start is not None:
                before_start(port, session)
            self.tx.session_started(port.port_id, session)

        async def on_end(port: Any, session: Any) -> None:
            try:
                await self.tx.session_ended(port.port_id, session, port.fault)
            finally:
                if before_end is not None:
                    await before_end(port, session)

        self.station.on_start = on_start
        self.station.on_end = on_end
        self.station.authorizer = self.tx.authorize

    @property
    def state(self) -> str:
        """connecting, pending, rejected, online, offline or unauthorized."""
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        if value != self._state:
            self._state = value
            self.station.events.publish("ocpp", self.link_view())

    def link_view(self) -> dict[str, Any]:
        """For the station page: is the central system there, and what is waiting for it."""
        return {
            "state": self.state,
            "error": self.error,
            "url": self.config.endpoint,
            "queued": self.outbox.waiting,
        }

    async def open(self) -> None:
        await self.outbox.open()
        await self.settings.load()
        self.auth.cache.load(self.settings.stored("auth_cache"))
        self.apply_availability()
        self.smart.book.profiles = self.settings.saved_profiles()
        for tx in await self.outbox.unfinished():
            log.warning(
                "ocpp: transaction %d on connector %d ended by power loss", tx.ref, tx.connector
            )
            payload = {
                "transaction_id": None,
                "timestamp": tx.last_at,
                "reason": "PowerLoss",
                "id_tag": tx.id_tag,
            }
            await self.outbox.end(tx.ref, payload, float(tx.last_meter))

    def budget_source(self, offer: Callable[[float | None, str, bool], None]) -> None:
        """Hand the station limit (connector 0) to the budget manager (``[budget] source =
        "ocpp"``) instead of capping the budget here: ``offer(limit_w, what, online)``."""
        self.smart.feed = lambda limit, what: offer(limit, what, self.state == "online")

    def apply_availability(self) -> None:
        """Ports set Inoperative (or the whole station) take no new session, from the start."""
        station_on = self.settings.available(0)
        for port_id in self.station.ports:
            on = station_on and self.settings.available(port_id)
            self.station.set_out_of_service(port_id, None if on else OUT_OF_SERVICE)

    async def close(self) -> None:
        """After the station stopped: sessions it ended on the way down end here with Reboot."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.tx.close()
        await self.outbox.close()

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)
        return task

    # --- running --------------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.tx.meter_loop(), name="ocpp-meter")
            group.create_task(self.smart.run(), name="ocpp-profiles")
            group.create_task(self._connection_loop(), name="ocpp-link")

    async def _connection_loop(self) -> None:
        while True:
            self.state = "connecting"
            try:
                async with connect(
                    self.config.endpoint,
                    subprotocols=[_subprotocol()],
                    additional_headers=self._auth_headers(),
                    ssl=self._ssl(),
                    open_timeout=self.config.response_timeout_s,
                ) as ws:
                    self.error = None
                    await self._connected(ws)
            except InvalidStatus as exc:
                status = exc.response.status_code
                self.error = (
                    "the central system refused the password"
                    if status == 401
                    else f"the central system answered HTTP {status}"
                )
                log.error("ocpp: %s", self.error)
            except (OSError, TimeoutError, WebSocketException, LinkLost) as exc:
                self.error = str(exc) or type(exc).__name__
                log.warning("ocpp: link down: %s", self.error)
            self.state = "unauthorized" if self.error and "password" in self.error else "offline"
            self.cp = None
            await self.clock.sleep(self.backoff.next_delay())

    def _auth_headers(self) -> dict[str, str]:
        if self.config.password is None:
            return {}
        secret = f"{self.config.charge_point_id}:{self.config.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(secret).decode()}

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.config.url.startswith("wss://"):
            return None
        context = ssl.create_default_context()
        if self.config.ca_file:
            context.load_verify_locations(self.config.ca_file)
        return context

    async def _connected(self, ws: ClientConnection) -> None:
        cp = StationChargePoint(self.config.charge_point_id, ws, self)
        reader = asyncio.ensure_future(cp.start())
        self.cp, self._reader = cp, reader
        try:
            await self._boot()
            self.state = "online"
            self.backoff.reset()
            self._sent.clear()
            loops = [
                asyncio.ensure_future(self._heartbeat_loop()),
                asyncio.ensure_future(self._status_loop()),
                asyncio.ensure_future(self._send_loop()),
            ]
            try:
                done, _ = await asyncio.wait([reader, *loops], return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
                raise LinkLost("the central system closed the connection")
            finally:
                for task in loops:
                    task.cancel()
                await asyncio.gather(*loops, return_exceptions=True)
        finally:
            self.cp = self._reader = None
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def call(self, payload: Any, unique_id: str | None = None) -> Any:
        """One call on the live link; a CALLERROR raises, a link lost meanwhile raises LinkLost.

        The package waits out its whole response timeout after the socket died; racing the
        reader ends that wait at once. A reply that came in just before the close still counts.
        """
        cp, reader = self.cp, self._reader
        if cp is None or reader is None:
            raise LinkLost("not connected")
        pending = asyncio.ensure_future(cp.call(payload, suppress=False, unique_id=unique_id))
        await asyncio.wait([pending, reader], return_when=asyncio.FIRST_COMPLETED)
        for _ in range(5):  # the reply may sit in the package's queue, not yet taken
            if pending.done():
                break
            await asyncio.sleep(0)
        if pending.done():
            return pending.result()
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        raise LinkLost("the link closed before the central system answered")

    async def _boot(self) -> None:
        """BootNotification before anything else; Pending and Rejected wait the interval given."""
        if self._booted:
            return
        while True:
            result = await self.call(
                call.BootNotification(
                    charge_point_vendor=self.config.vendor[:20],
                    charge_point_model=self.config.model[:20],
                    firmware_version=self.firmware_version[:50] or None,
                    charge_point_serial_number=self.config.charge_point_id[:25],
                )
            )
            interval = float(result.interval)
            if result.status == "Accepted":
                if interval > 0:
                    self.settings.heartbeat_s = interval
                self._booted = True
                return
            self.state = "pending" if result.status == "Pending" else "rejected"
            log.warning("ocpp: boot %s; again in %.0f s", result.status, interval or 60)
            await self.clock.sleep(interval if interval > 0 else 60.0)

    def reboot(self) -> None:
        """A soft reset: the next connection starts with a BootNotification again."""
        self._booted = False

    async def _heartbeat_loop(self) -> None:
        while True:
            await self.clock.sleep(self.settings.heartbeat_s)
            await self.call(call.Heartbeat())

    # --- statuses -------------------------------------------------------------------------------

    def statuses(self) -> dict[int, ConnectorStatus]:
        snapshot = self.station.snapshot()
        station_on = self.settings.available(0)
        out = {0: ConnectorStatus("Available" if station_on else "Unavailable")}
        for view in snapshot["ports"]:
            connector = int(view["id"])
            out[connector] = connector_status(
                view, station_on and self.settings.available(connector)
            )
        return out

    async def send_status(self, connector: int, status: ConnectorStatus) -> None:
        await self.call(
            call.StatusNotification(
                connector_id=connector,
                error_code=status.error_code,
                status=status.status,
                timestamp=iso(self.clock.wall()),
                info=status.info,
                vendor_error_code=status.vendor_error_code,
            )
        )
        self._sent[connector] = status

    async def _status_loop(self) -> None:
        """Each port event in order (so a CSMS sees Preparing before Charging), and a full
        re-read every STATUS_POLL_S for what changes without an event."""
        with self.station.events.subscribe() as events:
            changed = self.statuses()
            last_full = self.clock.monotonic()
            while True:
                for connector, status in changed.items():
                    if self._sent.get(connector) != status:
                        await self.send_status(connector, status)
                changed = {}
                with contextlib.suppress(TimeoutError):
                    event = await wait_for(self.clock, events.queue.get(), STATUS_POLL_S)
                    if event["type"] == "port":
                        connector = int(event["data"]["id"])
                        on = self.settings.available(0) and self.settings.available(connector)
                        changed[connector] = connector_status(event["data"], on)
                if self.clock.monotonic() - last_full >= STATUS_POLL_S:
                    changed = {**self.statuses(), **changed}
                    last_full = self.clock.monotonic()

    async def _send_loop(self) -> None:
        while True:
            self.outbox.changed.clear()
            item = await self.outbox.head()
            if item is None:
                with contextlib.suppress(TimeoutError):
                    await wait_for(self.clock, self.outbox.changed.wait(), OUTBOX_POLL_S)
                continue
            await self._deliver(item)

    async def _deliver(self, item: Queued) -> None:
        payload = dict(item.payload)
        if item.action != "StartTransaction":
            if item.transaction_id is None:
                await self.outbox.refuse(
                    item.seq, "the transaction has no id from the central system"
                )
                return
            payload["transaction_id"] = item.transaction_id
        cls = getattr(call, item.action)
        try:
            result = await self.call(cls(**payload), item.msg_id)
        except OCPPError as exc:
            log.error("ocpp: %s %d refused: %s", item.action, item.seq, exc)
            await self.outbox.refuse(item.seq, f"{type(exc).__name__}: {exc}")
            return
        if item.action != "StartTransaction":
            await self.outbox.delivered(item.seq)
            return
        transaction_id = int(result.transaction_id)
        await self.outbox.delivered(item.seq, transaction_id)
        await self.tx.started(item.tx_ref, transaction_id, result.id_tag_info.get("status"))


def _subprotocol() -> Any:
    from websockets.typing import Subprotocol

    return Subprotocol("ocpp1.6")


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("ocpp: task failed", exc_info=task.exception())
