"""A real central system for the tests, built from the same ``ocpp`` package in its central role.

Schema validation stays on for every message both ways; a websockets server listens on localhost
and checks HTTP Basic credentials as a CSMS does in security profiles 1 and 2. Every message a
charge point sends is kept in order, so the tests can check order, loss and doubles.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.server import Server, ServerConnection, basic_auth, serve


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Received:
    action: str
    payload: dict[str, Any]


@dataclass
class CentralState:
    boot_status: str = "Accepted"
    boot_interval: int = 300
    id_tag_status: str = "Accepted"
    tag_status: dict[str, str] = field(default_factory=dict)
    """Per idTag, over ``id_tag_status``."""
    authorize_hold: asyncio.Event | None = None
    """While set and not yet released, Authorize is answered only when it is."""
    stop_at_once: bool = False
    """Send RemoteStopTransaction the moment a StartTransaction is answered (a known race)."""
    remote_stop_replies: list[str] = field(default_factory=list)
    messages: list[Received] = field(default_factory=list)
    transaction_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))

    def status_of(self, payload: dict[str, Any]) -> str:
        return self.tag_status.get(str(payload.get("id_tag")), self.id_tag_status)

    def of(self, action: str) -> list[dict[str, Any]]:
        return [m.payload for m in self.messages if m.action == action]

    def actions(self) -> list[str]:
        return [m.action for m in self.messages]


class CentralSide(ChargePoint):  # type: ignore[misc]
    def __init__(self, cp_id: str, connection: ServerConnection, state: CentralState) -> None:
        super().__init__(cp_id, connection)
        self.state = state

    def _keep(self, action: str, **payload: Any) -> None:
        self.state.messages.append(Received(action, payload))

    @on(Action.boot_notification)  # type: ignore[misc]
    def on_boot(self, **payload: Any) -> call_result.BootNotification:
        self._keep("BootNotification", **payload)
        return call_result.BootNotification(
            current_time=now_iso(), interval=self.state.boot_interval, status=self.state.boot_status
        )

    @on(Action.heartbeat)  # type: ignore[misc]
    def on_heartbeat(self) -> call_result.Heartbeat:
        self._keep("Heartbeat")
        return call_result.Heartbeat(current_time=now_iso())

    @on(Action.status_notification)  # type: ignore[misc]
    def on_status(self, **payload: Any) -> call_result.StatusNotification:
        self._keep("StatusNotification", **payload)
        return call_result.StatusNotification()

    @on(Action.authorize)  # type: ignore[misc]
    async def on_authorize(self, **payload: Any) -> call_result.Authorize:
        self._keep("Authorize", **payload)
        if self.state.authorize_hold is not None:
            await self.state.authorize_hold.wait()
        return call_result.Authorize(id_tag_info={"status": self.state.status_of(payload)})

    @on(Action.start_transaction)  # type: ignore[misc]
    def on_start(self, **payload: Any) -> call_result.StartTransaction:
        self._keep("StartTransaction", **payload)
        return call_result.StartTransaction(
            transaction_id=next(self.state.transaction_ids),
            id_tag_info={"status": self.state.status_of(payload)},
        )

    @after(Action.start_transaction)  # type: ignore[misc]
    async def after_start(self, **payload: Any) -> None:
        if self.state.stop_at_once:
            transaction_id = next(self.state.transaction_ids) - 1
            self.state.transaction_ids = itertools.count(transaction_id + 1)
            reply = await self.call(call.RemoteStopTransaction(transaction_id=transaction_id))
            self.state.remote_stop_replies.append(reply.status)

    @on(Action.meter_values)  # type: ignore[misc]
    def on_meter(self, **payload: Any) -> call_result.MeterValues:
        self._keep("MeterValues", **payload)
        return call_result.MeterValues()

    @on(Action.stop_transaction)  # type: ignore[misc]
    def on_stop(self, **payload: Any) -> call_result.StopTransaction:
        self._keep("StopTransaction", **payload)
        return call_result.StopTransaction(id_tag_info={"status": "Accepted"})


class CentralSystem:
    """Listens on ``port``; ``stop()`` and ``start()`` again on the same port, like an outage."""

    def __init__(
        self,
        port: int,
        credentials: tuple[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.port = port
        self.credentials = credentials
        self.tls = tls
        self.state = CentralState()
        self.server: Server | None = None
        self.connected: dict[str, CentralSide] = {}
        self.refused_logins = 0

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"wss://localhost:{self.port}/ocpp"
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def start(self) -> None:
        def check(user: str, password: str) -> bool:
            ok = self.credentials == (user, password)
            self.refused_logins += 0 if ok else 1
            return ok

        self.server = await serve(
            self._handle,
            "127.0.0.1",
            self.port,
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            process_request=basic_auth(check_credentials=check) if self.credentials else None,
            ssl=self.tls,
        )

    async def stop(self) -> None:
        if self.state.authorize_hold is not None:
            self.state.authorize_hold.set()  # a held answer must not keep the server open
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        self.connected.clear()

    async def _handle(self, connection: ServerConnection) -> None:
        path = connection.request.path if connection.request else ""
        cp_id = path.rstrip("/").rsplit("/", 1)[-1]
        side = CentralSide(cp_id, connection, self.state)
        self.connected[cp_id] = side
        try:
            await side.start()
        except Exception:
            pass
        finally:
            if self.connected.get(cp_id) is side:
                del self.connected[cp_id]

    async def call(self, cp_id: str, payload: Any) -> Any:
        """Send a request to a connected charge point and return its (schema-checked) reply."""
        return await asyncio.wait_for(self.connected[cp_id].call(payload, suppress=False), 10.0)
