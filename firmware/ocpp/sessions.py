"""Sessions as OCPP transactions: begun, metered and ended through the uplink's outbox.

A session's StartTransaction, MeterValues and StopTransaction are queued (never sent directly),
so the order is kept whether or not the central system is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from firmware.ocpp.profiles import iso
from firmware.ocpp.status import TRANSACTION_STATES
from firmware.ocpp.transactions import Live, id_tag_for, sampled_values, stop_reason
from firmware.station.sessions import Verdict
from firmware.station.station import StationError
from hal.clock import wait_for

if TYPE_CHECKING:
    from firmware.ocpp.uplink import Uplink

log = logging.getLogger(__name__)


class Transactions:
    def __init__(self, uplink: Uplink) -> None:
        self.up = uplink
        self.live: dict[int, Live] = {}
        self.remote_tags: dict[int, str] = {}
        """idTags of RemoteStartTransaction requests, until their session starts."""
        self._tx_ids: dict[int, int] = {}
        self._tx_known = asyncio.Event()

    def tx_start(self, connector: int) -> float | None:
        live = self.live.get(connector)
        return live.started_at if live else None

    async def started(self, ref: int, transaction_id: int, status: str | None) -> None:
        """The StartTransaction reply: the id, and whether the idTag may go on charging."""
        self._tx_ids[ref] = transaction_id
        self._tx_known.set()
        connector = self.transaction_of(transaction_id)
        if status is not None and connector is not None:
            await self.up.auth.cache.put(self.live[connector].id_tag, {"status": status})
        if status != "Accepted" and connector is not None and self.up.settings.stop_on_invalid_id:
            self.live[connector].stop_override = "DeAuthorized"
            await self.stop_session(connector, self.live[connector].session)

    async def close(self) -> None:
        """At shutdown: sessions the station ended on its way down, whose end was cut short."""
        for connector, live in list(self.live.items()):
            if live.ref is not None:
                with contextlib.suppress(Exception):
                    await self.end(connector, live, live.session.end_reason or "shutdown", None)

    async def authorize(self, port: Any, session: Any) -> Verdict:
        """The station's gate (``Station.authorizer``): asked before a session gets power."""
        connector = int(port.port_id)
        remote = self.remote_tags.get(connector)
        tag = tag_of(session)
        return await self.up.auth.verdict(connector, tag, remote is not None and remote == tag)

    def session_started(self, connector: int, session: Any) -> None:
        """The gate let the session through: it is a transaction from now on."""
        self.remote_tags.pop(connector, None)
        live = Live(
            connector, session.public_token, tag_of(session), self.up.clock.wall(), session=session
        )
        self.live[connector] = live
        live.begun = self.up.spawn(self._begin(live))

    async def stop_session(self, connector: int, session: Any) -> None:
        """Stop a session the central system refused, once the station has it under way (a stop
        issued while the start command is still running would race it)."""
        for _ in range(100):
            view = self.up.station.port_view(self.up.station.ports[connector])
            token = (view.get("session") or {}).get("public_token")
            if token != session.public_token:
                return
            if view["state"] in TRANSACTION_STATES:
                with contextlib.suppress(StationError):
                    await self.up.station.stop(connector, "operator")
                return
            await self.up.clock.sleep(0.05)

    async def _begin(self, live: Live) -> None:
        live.ref, live.meter_start = await self.up.outbox.begin(
            live.connector, live.id_tag, iso(live.started_at)
        )
        live.register_wh = float(live.meter_start)

    async def session_ended(self, connector: int, session: Any, fault: Any) -> None:
        live = self.live.get(connector)
        if live is None or live.session is not session:
            return
        if live.begun is not None:
            await asyncio.gather(live.begun, return_exceptions=True)
        fault_code = getattr(fault, "code", None)
        if live.ref is not None:
            await self.end(connector, live, session.end_reason, fault_code)
        self.live.pop(connector, None)
        self.up.smart.book.drop_tx(connector)
        self.up.smart.apply()

    async def end(
        self, connector: int, live: Live, end_reason: str | None, code: str | None
    ) -> None:
        assert live.ref is not None
        session = live.session
        register = live.register_wh + float(session.energy_wh)
        ended = session.ended_at or self.up.clock.wall()
        payload = {
            "transaction_id": None,
            "timestamp": iso(ended),
            "reason": stop_reason(end_reason, code, live.stop_override),
            "id_tag": live.id_tag,
            "transaction_data": [
                {
                    "timestamp": iso(ended),
                    "sampled_value": [
                        {
                            "value": f"{register:.1f}",
                            "context": "Transaction.End",
                            "measurand": "Energy.Active.Import.Register",
                            "unit": "Wh",
                        }
                    ],
                }
            ],
        }
        await self.up.outbox.end(live.ref, payload, register)
        live.ref = None

    async def meter_loop(self) -> None:
        while True:
            await self.up.clock.sleep(self.up.settings.meter_interval_s)
            views = {int(v["id"]): v for v in self.up.station.snapshot()["ports"]}
            for connector, live in list(self.live.items()):
                view = views.get(connector)
                session = (view or {}).get("session") or {}
                if live.ref is None or session.get("public_token") != live.public_token:
                    continue
                await self.queue_meter(connector, live, view or {}, "Sample.Periodic")

    async def queue_meter(
        self, connector: int, live: Live, view: dict[str, Any], context: str
    ) -> None:
        if live.ref is None:
            return
        values = sampled_values(view, live.register_wh, self.up.settings.measurands, context)
        now = iso(self.up.clock.wall())
        energy = live.register_wh + float((view.get("session") or {}).get("energy_wh") or 0.0)
        payload = {
            "connector_id": connector,
            "transaction_id": None,
            "meter_value": [{"timestamp": now, "sampled_value": values}],
        }
        await self.up.outbox.meter(live.ref, payload, int(energy), now)

    def transaction_of(self, transaction_id: int) -> int | None:
        for connector, live in self.live.items():
            if live.ref is not None and self._tx_ids.get(live.ref) == transaction_id:
                return connector
        return None

    async def wait_transaction(self, transaction_id: int, timeout_s: float = 2.0) -> int | None:
        """The connector of a transaction, waiting briefly: a RemoteStop may overtake its id."""
        deadline = self.up.clock.monotonic() + timeout_s
        while (connector := self.transaction_of(transaction_id)) is None:
            left = deadline - self.up.clock.monotonic()
            if left <= 0:
                return None
            self._tx_known.clear()
            with contextlib.suppress(TimeoutError):
                await wait_for(self.up.clock, self._tx_known.wait(), left)
        return connector


def tag_of(session: Any) -> str:
    """A session's idTag: its tag's or the central system's, else its owner token's hash."""
    return str(session.id_tag or id_tag_for(session.owner_token))
