"""What the central system may ask of the station: the handlers of the ocpp package's charge point.

Handlers answer at once; anything that sends a message of its own (a triggered message, a
reset's stops) runs afterwards in a task the uplink owns, because the package reads the next
message only after a handler returned.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from firmware.ocpp.profiles import TX, check_profile, iso
from firmware.ocpp.smart import port_volts
from firmware.station.station import StationError

if TYPE_CHECKING:
    from firmware.ocpp.uplink import Uplink

log = logging.getLogger(__name__)

RESET_WAIT_S = 10.0
"""How long a reset waits for the sessions it stopped to end before it goes on."""


class StationChargePoint(ChargePoint):
    def __init__(self, cp_id: str, connection: Any, uplink: Uplink) -> None:
        super().__init__(cp_id, connection, response_timeout=uplink.config.response_timeout_s)
        self.uplink = uplink

    @property
    def station(self) -> Any:
        return self.uplink.station

    def _connectors(self, connector: int) -> list[int]:
        return sorted(self.station.ports) if connector == 0 else [connector]

    # --- transactions ---------------------------------------------------------------------------

    @on(Action.remote_start_transaction)
    async def on_remote_start(
        self, id_tag: str, connector_id: int | None = None, charging_profile: Any = None
    ) -> call_result.RemoteStartTransaction:
        up = self.uplink
        views = {int(v["id"]): v for v in self.station.snapshot()["ports"]}
        if connector_id is None:
            ready = [c for c, v in sorted(views.items()) if v["state"] == "ready"]
            connector_id = ready[0] if ready else None
        if connector_id not in views or not (
            up.settings.available(0) and up.settings.available(connector_id)
        ):
            return call_result.RemoteStartTransaction(status="Rejected")
        if charging_profile is not None and charging_profile.get("charging_profile_purpose") != TX:
            return call_result.RemoteStartTransaction(status="Rejected")
        up.tx.remote_tags[connector_id] = id_tag
        try:
            # The same command as the start button, naming the central system's idTag.
            await self.station.start(connector_id, id_tag=id_tag)
        except StationError as exc:
            up.tx.remote_tags.pop(connector_id, None)
            log.info("ocpp: remote start on %d refused: %s", connector_id, exc)
            return call_result.RemoteStartTransaction(status="Rejected")
        if charging_profile is not None:
            up.smart.book.install(connector_id, charging_profile, self.uplink.clock.wall())
            up.smart.changed.set()
        return call_result.RemoteStartTransaction(status="Accepted")

    @on(Action.remote_stop_transaction)
    async def on_remote_stop(self, transaction_id: int) -> call_result.RemoteStopTransaction:
        connector = await self.uplink.tx.wait_transaction(transaction_id)
        if connector is None:
            return call_result.RemoteStopTransaction(status="Rejected")
        self.uplink.tx.live[connector].stop_override = "Remote"
        try:
            await self.station.stop(connector, "operator")
        except StationError:
            return call_result.RemoteStopTransaction(status="Rejected")
        return call_result.RemoteStopTransaction(status="Accepted")

    @on(Action.unlock_connector)
    def on_unlock(self, connector_id: int) -> call_result.UnlockConnector:
        # The plugs have no lock to release: say so rather than pretend.
        return call_result.UnlockConnector(status="NotSupported")

    # --- availability and reset -----------------------------------------------------------------

    @on(Action.change_availability)
    async def on_change_availability(
        self,
        connector_id: int,
        type: str,  # noqa: A002
    ) -> call_result.ChangeAvailability:
        if connector_id != 0 and connector_id not in self.station.ports:
            return call_result.ChangeAvailability(status="Rejected")
        operative = type == "Operative"
        await self.uplink.settings.set_available(connector_id, operative)
        self.uplink.apply_availability()  # no new session from now; one under way runs on
        busy = any(c in self.uplink.tx.live for c in self._connectors(connector_id))
        status = "Scheduled" if busy and not operative else "Accepted"
        return call_result.ChangeAvailability(status=status)

    @on(Action.clear_cache)
    async def on_clear_cache(self) -> call_result.ClearCache:
        await self.uplink.auth.cache.clear()
        return call_result.ClearCache(status="Accepted")

    @on(Action.reset)
    def on_reset(self, type: str) -> call_result.Reset:  # noqa: A002
        self.uplink.spawn(self._reset(type))
        return call_result.Reset(status="Accepted")

    async def _reset(self, kind: str) -> None:
        up = self.uplink
        for connector, live in list(up.tx.live.items()):
            live.stop_override = "HardReset" if kind == "Hard" else "SoftReset"
            with contextlib.suppress(StationError):
                await self.station.stop(connector, "operator")
        deadline = up.clock.monotonic() + RESET_WAIT_S
        while up.tx.live and up.clock.monotonic() < deadline:
            await up.clock.sleep(0.1)
        if kind == "Hard" and up.restart is not None:
            up.restart()
            return
        for port_id in self.station.ports:
            with contextlib.suppress(StationError):
                await self.station.reset(port_id)
        up.reboot()
        if up.cp is self:
            await self._connection.close()

    # --- configuration and triggers -------------------------------------------------------------

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None) -> call_result.GetConfiguration:
        found, unknown = self.uplink.settings.report(key)
        return call_result.GetConfiguration(configuration_key=found, unknown_key=unknown or None)

    @on(Action.change_configuration)
    async def on_change_configuration(
        self, key: str, value: str
    ) -> call_result.ChangeConfiguration:
        status = await self.uplink.settings.change(key, value)
        return call_result.ChangeConfiguration(status=status)

    @on(Action.trigger_message)
    def on_trigger(
        self, requested_message: str, connector_id: int | None = None
    ) -> call_result.TriggerMessage:
        if (
            connector_id is not None
            and connector_id != 0
            and connector_id not in self.station.ports
        ):
            return call_result.TriggerMessage(status="Rejected")
        if requested_message not in (
            "BootNotification",
            "Heartbeat",
            "StatusNotification",
            "MeterValues",
        ):
            return call_result.TriggerMessage(status="NotImplemented")
        self.uplink.spawn(self._triggered(requested_message, connector_id))
        return call_result.TriggerMessage(status="Accepted")

    async def _triggered(self, message: str, connector_id: int | None) -> None:
        up = self.uplink
        if message == "BootNotification":
            up.reboot()
            await up._boot()
        elif message == "Heartbeat":
            await up.call(call.Heartbeat())
        elif message == "StatusNotification":
            for connector, status in up.statuses().items():
                if connector_id is None or connector == connector_id:
                    await up.send_status(connector, status)
        else:
            views = {int(v["id"]): v for v in self.station.snapshot()["ports"]}
            for connector, live in list(up.tx.live.items()):
                if connector_id in (None, 0, connector):
                    await up.tx.queue_meter(connector, live, views[connector], "Trigger")

    # --- smart charging -------------------------------------------------------------------------

    @on(Action.set_charging_profile)
    async def on_set_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any]
    ) -> call_result.SetChargingProfile:
        up = self.uplink

        def has_tx(connector: int, transaction_id: int | None) -> bool:
            if connector not in up.tx.live:
                return False
            return transaction_id is None or up.tx.transaction_of(transaction_id) == connector

        if connector_id != 0 and connector_id not in self.station.ports:
            return call_result.SetChargingProfile(status="Rejected")
        why = check_profile(connector_id, cs_charging_profiles, has_tx)
        if why is not None:
            log.info("ocpp: charging profile refused: %s", why)
            return call_result.SetChargingProfile(status="Rejected")
        up.smart.book.install(connector_id, cs_charging_profiles, up.clock.wall())
        await up.settings.save_profiles(up.smart.book.profiles)
        up.smart.apply()
        return call_result.SetChargingProfile(status="Accepted")

    @on(Action.clear_charging_profile)
    async def on_clear_profile(
        self,
        id: int | None = None,  # noqa: A002
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
    ) -> call_result.ClearChargingProfile:
        up = self.uplink
        removed = up.smart.book.clear(id, connector_id, charging_profile_purpose, stack_level)
        await up.settings.save_profiles(up.smart.book.profiles)
        up.smart.apply()
        return call_result.ClearChargingProfile(status="Accepted" if removed else "Unknown")

    @on(Action.get_composite_schedule)
    def on_composite(
        self, connector_id: int, duration: int, charging_rate_unit: str | None = None
    ) -> call_result.GetCompositeSchedule:
        up = self.uplink
        views = {int(v["id"]): v for v in self.station.snapshot()["ports"]}
        if connector_id != 0 and connector_id not in views:
            return call_result.GetCompositeSchedule(status="Rejected")
        unit = charging_rate_unit or "W"
        if connector_id == 0:
            volts = min(float(v["limits"]["v_max_v"]) for v in views.values())
            tx_start = None
        else:
            volts = port_volts(views[connector_id])[0]
            live = up.tx.live.get(connector_id)
            tx_start = live.started_at if live else None
        now = up.clock.wall()
        periods = up.smart.book.composite(connector_id, now, float(duration), tx_start, volts, unit)
        if not periods:
            return call_result.GetCompositeSchedule(status="Accepted", connector_id=connector_id)
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=iso(now),
            charging_schedule={
                "duration": int(duration),
                "start_schedule": iso(now),
                "charging_rate_unit": unit,
                "charging_schedule_period": [
                    {"start_period": int(start), "limit": limit} for start, limit in periods
                ],
            },
        )
