"""A site power reading from an MQTT topic: Home Assistant, Shelly, Tasmota, or any bridge.

The payload is a plain number (``1234.5``) or JSON, with ``key`` a dotted path to the number
(``ENERGY.Power`` for Tasmota's SENSOR, ``apower`` for a Shelly Gen2 status). A payload that does
not parse is logged and ignored: it is no reading, so it cannot pass for zero load.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import ssl
from collections.abc import Callable
from typing import Any

import aiomqtt

from firmware.site_config import MqttConfig, MqttMeterConfig
from hal.clock import Clock

log = logging.getLogger(__name__)

RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)


def parse_power(payload: bytes, key: str | None, scale: float = 1.0) -> float:
    """Watts from one payload; ValueError with the reason when it holds no number."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("the payload is not text") from None
    value: Any
    if key is None:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError(f"not a number: {text[:40]!r}") from None
    else:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError(f"not JSON: {text[:40]!r}") from None
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                raise ValueError(f"no '{key}' in the payload")
            value = value[part]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"not a number: {value!r}")
    return float(value) * scale


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that was swallowed on the way: on Python 3.11, asyncio.wait_for
    (which aiomqtt's publish and disconnect use) drops a cancellation that arrives as its inner
    future completes, and the client's exit can turn one into an MqttError. The task still
    counts as cancelling, so a loop that checks this after each await ends as it should."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def client_for(broker: MqttConfig, **extra: Any) -> aiomqtt.Client:
    """An aiomqtt client with the broker's address, credentials and TLS from the configuration."""
    tls: ssl.SSLContext | None = None
    if broker.tls:
        tls = ssl.create_default_context(cafile=broker.ca_file)
    return aiomqtt.Client(
        broker.host,
        broker.port,
        username=broker.username,
        password=broker.password,
        tls_context=tls,
        timeout=5.0,
        **extra,
    )


class MqttMeter:
    """Follows one topic and hands each good value to ``on_reading``; reconnects on its own."""

    def __init__(
        self,
        broker: MqttConfig,
        meter: MqttMeterConfig,
        clock: Clock,
        on_reading: Callable[[float], None],
    ) -> None:
        self.broker = broker
        self.meter = meter
        self.clock = clock
        self.on_reading = on_reading
        self.description = f"MQTT {meter.topic} on {broker.host}:{broker.port}"
        self.connected = False
        self.subscribed = False

    def handle(self, payload: bytes) -> None:
        try:
            watts = parse_power(payload, self.meter.key, self.meter.scale)
        except ValueError as exc:
            log.warning("%s: ignored: %s", self.description, exc)
            return
        self.on_reading(watts)

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                async with client_for(self.broker) as client:
                    self.connected = True
                    failures = 0
                    await client.subscribe(self.meter.topic, qos=0)
                    self.subscribed = True  # the broker confirmed: readings flow from now
                    log.info("%s: subscribed", self.description)
                    async for message in client.messages:
                        payload = message.payload
                        if isinstance(payload, bytes | bytearray):
                            self.handle(bytes(payload))
                        elif isinstance(payload, int | float | str):
                            self.handle(str(payload).encode())
            except aiomqtt.MqttError as exc:
                if failures == 0:
                    log.warning("%s: %s; reconnecting", self.description, exc)
            finally:
                self.connected = False
                self.subscribed = False
            raise_if_cancelled()
            await self.clock.sleep(RETRY_S[min(failures, len(RETRY_S) - 1)])
            failures += 1
