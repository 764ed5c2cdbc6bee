"""Publishes the station to an MQTT broker (aiomqtt), with Home Assistant discovery.

On each connection: the availability topic says ``online`` (the last will says ``offline`` when
the connection is lost), the discovery configs and the present state go out retained, and two
topics are followed: HA's birth message (``homeassistant/status`` = ``online``: HA restarted and
forgot everything not retained, so everything is sent again) and the budget's command topic.
State follows the station's events (at most every ``MIN_GAP_S`` per topic) and is re-sent every
``publish_period_s``. A budget sent from HA is taken only when the operator allows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Protocol

import aiomqtt

from firmware.budget.mqtt_meter import RETRY_S, client_for, raise_if_cancelled
from firmware.events import EventHub
from firmware.mqtt.discovery import Topics, discovery, port_state, station_state
from firmware.site_config import MqttConfig
from hal.clock import Clock

log = logging.getLogger(__name__)

MIN_GAP_S = 1.0


class Published(Protocol):
    """The station as the publisher sees it (``firmware.station.station.Station``)."""

    events: EventHub

    def snapshot(self) -> dict[str, Any]: ...


class BudgetControl(Protocol):
    """``firmware.budget.manager.BudgetManager``: the budget's source, and the operator's say."""

    def view(self) -> dict[str, Any]: ...

    async def set_manual(self, watts: float | None) -> dict[str, Any]: ...


class MqttPublisher:
    def __init__(
        self,
        config: MqttConfig,
        station: Published,
        clock: Clock,
        *,
        station_name: str,
        budget: BudgetControl | None = None,
        max_budget_w: float = 100_000.0,
    ) -> None:
        self.config = config
        self.station = station
        self.clock = clock
        self.budget = budget
        self.name = station_name
        self.max_budget_w = max_budget_w
        self.topics = Topics.of(config, station_name)
        self.connected = False
        self.client: aiomqtt.Client | None = None
        self.subscribed = False
        self.refused = 0
        self.failures = 0
        """Connection attempts failed in a row (the retry delay grows with it)."""
        self.failed = 0
        """Connections failed or lost since start."""
        self._sent: dict[str, tuple[float, str]] = {}

    # --- payloads ---------------------------------------------------------------------------------

    def _snapshot(self) -> dict[str, Any]:
        return self.station.snapshot()

    def discovery_messages(self) -> list[tuple[str, bytes]]:
        port_ids = [int(p["id"]) for p in self._snapshot()["ports"]]
        configs = discovery(
            self.topics,
            self.name,
            port_ids,
            allow_budget_set=self.config.allow_budget_set and self.budget is not None,
            max_budget_w=self.max_budget_w,
        )
        return [(t, b"" if p is None else json.dumps(p).encode()) for t, p in configs]

    def state_messages(self) -> list[tuple[str, bytes]]:
        snapshot = self._snapshot()
        budget = self.budget.view() if self.budget is not None else None
        out = [(self.topics.station, json.dumps(station_state(snapshot, budget)).encode())]
        for port in snapshot["ports"]:
            out.append((self.topics.port(int(port["id"])), json.dumps(port_state(port)).encode()))
        return out

    # --- running ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, publish, follow; reconnect after a lost connection, until cancelled."""
        while True:
            will = aiomqtt.Will(self.topics.availability, b"offline", qos=1, retain=True)
            try:
                async with client_for(
                    self.config, identifier=self.config.client_id, will=will
                ) as client:
                    self.connected = True
                    self.client = client
                    self.failures = 0
                    await self._session(client)
            except aiomqtt.MqttError as exc:
                self.failed += 1
                if self.failures == 0:
                    log.warning(
                        "MQTT %s:%d: %s; reconnecting", self.config.host, self.config.port, exc
                    )
            finally:
                self.connected = False
                self.client = None
            raise_if_cancelled()
            await self.clock.sleep(RETRY_S[min(self.failures, len(RETRY_S) - 1)])
            self.failures += 1

    async def _session(self, client: aiomqtt.Client) -> None:
        await client.subscribe(self.topics.ha_status, qos=1)
        # Followed even when HA may not set the budget, so that a refusal is logged and counted.
        await client.subscribe(self.topics.budget_set, qos=1)
        await self.announce(client)
        log.info(
            "MQTT: publishing to %s:%d as %s", self.config.host, self.config.port, self.topics.root
        )
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._follow_events(client))
                group.create_task(self._periodic(client))
                group.create_task(self._follow_messages(client))
        finally:
            # A clean stop says so at once; the last will covers the unclean ones.
            with contextlib.suppress(Exception):
                offline = client.publish(self.topics.availability, b"offline", qos=1, retain=True)
                await asyncio.wait_for(offline, 1.0)

    async def announce(self, client: aiomqtt.Client) -> None:
        """Availability, discovery and state: on connecting and whenever HA comes back."""
        await client.publish(self.topics.availability, b"online", qos=1, retain=True)
        for topic, payload in self.discovery_messages():
            await client.publish(topic, payload, qos=1, retain=True)
            raise_if_cancelled()
        self._sent.clear()
        await self._publish_state(client, force=True)

    async def _publish_state(self, client: aiomqtt.Client, *, force: bool = False) -> None:
        now = self.clock.monotonic()
        for topic, payload in self.state_messages():
            text = payload.decode()
            last = self._sent.get(topic)
            if not force and last is not None:
                at, sent = last
                if sent == text or now - at < MIN_GAP_S:
                    continue
            self._sent[topic] = (now, text)
            await client.publish(topic, payload, qos=0, retain=True)
            raise_if_cancelled()

    async def _follow_events(self, client: aiomqtt.Client) -> None:
        with self.station.events.subscribe(maxsize=64, brief=True) as sub:
            self.subscribed = True
            try:
                async for _event in sub:
                    await self._publish_state(client)
            finally:
                self.subscribed = False

    async def _periodic(self, client: aiomqtt.Client) -> None:
        while True:
            await self.clock.sleep(self.config.publish_period_s)
            await self._publish_state(client, force=True)

    async def _follow_messages(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            if isinstance(payload, bytes | bytearray):
                text = payload.decode(errors="replace")
            else:
                text = str(payload)
            if message.topic.matches(self.topics.ha_status):
                if text.strip() == "online":
                    log.info("MQTT: Home Assistant is back; publishing discovery again")
                    await self.announce(client)
            elif message.topic.matches(self.topics.budget_set):
                await self._budget_from_ha(client, text)
            raise_if_cancelled()

    async def _budget_from_ha(self, client: aiomqtt.Client, text: str) -> None:
        if not self.config.allow_budget_set or self.budget is None:
            self.refused += 1
            log.warning("MQTT: budget %r from Home Assistant refused: not allowed", text)
            return
        try:
            watts = float(text)
            if not 0 <= watts <= self.max_budget_w:
                raise ValueError(f"outside 0..{self.max_budget_w:.0f} W")
            await self.budget.set_manual(watts)
        except ValueError as exc:
            self.refused += 1
            log.warning("MQTT: budget %r from Home Assistant refused: %s", text, exc)
        await self._publish_state(client, force=True)  # HA's number shows what holds now
