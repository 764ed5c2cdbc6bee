"""The station on a real MQTT broker (Debian's mosquitto, started here): Home Assistant discovery
checked against HA's documented schema, state, availability and its last will, HA restarting,
the budget set from HA when allowed and refused when not, and the budget following a topic."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from firmware.budget.manager import BudgetManager
from firmware.budget.manual import ManualBudgetFile
from firmware.budget.mqtt_meter import MqttMeter, parse_power
from firmware.mqtt.publisher import MqttPublisher
from firmware.site_config import BudgetConfig, MqttConfig, MqttMeterConfig
from tests.broker import Broker, mosquitto, self_signed
from tests.support import Bench, make_bench

pytestmark = pytest.mark.broker

# Home Assistant's MQTT discovery schema for the entity types used (home-assistant.io,
# integrations sensor.mqtt, binary_sensor.mqtt, number.mqtt): required and known keys.
COMMON = {
    "name", "unique_id", "availability_topic", "payload_available", "payload_not_available",
    "device", "device_class", "value_template", "json_attributes_topic",
    "json_attributes_template", "state_topic", "unit_of_measurement",
}  # fmt: skip
SCHEMA: dict[str, tuple[set[str], set[str]]] = {
    "sensor": ({"state_topic"}, COMMON | {"state_class"}),
    "binary_sensor": ({"state_topic"}, COMMON | {"payload_on", "payload_off"}),
    "number": ({"command_topic"}, COMMON | {"min", "max", "step", "mode"}),
}
DEVICE_CLASSES = {
    "sensor": {"power", "energy", "battery", None},
    "binary_sensor": {"problem", None},
    "number": {"power", None},
}
UNITS = {"power": {"W", "kW"}, "energy": {"Wh", "kWh"}, "battery": {"%"}}
STATE_CLASSES = {"measurement", "total", "total_increasing"}
NUMBER_MODES = {"auto", "box", "slider"}


def check_ha_schema(topic: str, payload: dict[str, Any]) -> None:
    component = topic.split("/")[1]
    required, known = SCHEMA[component]
    assert required <= payload.keys(), f"{topic}: missing {required - payload.keys()}"
    assert payload.keys() <= known, f"{topic}: unknown {payload.keys() - known}"
    device_class = payload.get("device_class")
    assert device_class in DEVICE_CLASSES[component], topic
    if device_class in UNITS:
        assert payload.get("unit_of_measurement") in UNITS[device_class], topic
    if "state_class" in payload:
        assert payload["state_class"] in STATE_CLASSES, topic
    if component == "number":
        assert payload["mode"] in NUMBER_MODES and payload["min"] < payload["max"]
    device = payload["device"]
    assert device["identifiers"] and device["name"], topic
    assert payload["unique_id"].startswith("pev_charger_")


@dataclass
class Listener:
    """A client that records every message on the broker, as Home Assistant would see them."""

    client: aiomqtt.Client
    seen: list[tuple[str, bytes, bool]] = field(default_factory=list)

    def on(self, topic: str) -> list[bytes]:
        return [p for t, p, _ in self.seen if t == topic]

    async def until(self, condition: Callable[[], bool], deadline_s: float = 10.0) -> None:
        await until(condition, deadline_s)


async def until(condition: Callable[[], bool], deadline_s: float = 10.0) -> None:
    """Wait, in real time and within a deadline, for what the broker's traffic brings about."""
    async with asyncio.timeout(deadline_s):
        while not condition():  # noqa: ASYNC110 - the broker's traffic has no event to await
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def listening(broker: Broker) -> AsyncIterator[Listener]:
    async with aiomqtt.Client(broker.host, broker.port, identifier="ha-test") as client:
        listener = Listener(client)
        await client.subscribe("#", qos=1)

        async def collect() -> None:
            async for message in client.messages:
                payload = message.payload
                data = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
                listener.seen.append((message.topic.value, data, message.retain))

        task = asyncio.create_task(collect())
        try:
            yield listener
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def broker_config(broker: Broker, **changes: Any) -> MqttConfig:
    return MqttConfig(enabled=True, host=broker.host, port=broker.port, **changes)


@contextlib.asynccontextmanager
async def publishing(
    bench: Bench, config: MqttConfig, tmp_path: Path
) -> AsyncIterator[tuple[MqttPublisher, BudgetManager]]:
    manager = BudgetManager(
        BudgetConfig(),
        bench.station,
        bench.clock,
        static_w=600.0,
        manual_file=ManualBudgetFile(tmp_path / "budget.json"),
    )
    manager.load()
    publisher = MqttPublisher(
        config, bench.station, bench.clock, station_name="Bike Shed", budget=manager,
        max_budget_w=2000.0,
    )  # fmt: skip
    task = asyncio.create_task(publisher.run())
    try:
        yield publisher, manager
    finally:
        task.cancel()
        _, pending = await asyncio.wait({task}, timeout=10.0)
        assert not pending, "the publisher did not stop when cancelled"


async def test_discovery_state_and_ha_restart(tmp_path: Path) -> None:
    with mosquitto(tmp_path) as broker:
        async with make_bench(tmp_path, ports=2) as bench, listening(broker) as ha:
            async with publishing(bench, broker_config(broker), tmp_path) as (publisher, _):
                root = "pev-charger/bike_shed"
                await ha.until(lambda: bool(ha.on(f"{root}/port/2")))
                assert ha.on(f"{root}/availability") == [b"online"]
                configs = {t: p for t, p, _ in ha.seen if t.startswith("homeassistant/")}
                entities = {t: json.loads(p) for t, p in configs.items() if p}
                for topic, payload in entities.items():
                    check_ha_schema(topic, payload)
                assert len({e["device"]["identifiers"][0] for e in entities.values()}) == 1
                assert "homeassistant/sensor/bike_shed/port1_power/config" in entities
                assert "homeassistant/binary_sensor/bike_shed/port2_fault/config" in entities
                assert "homeassistant/sensor/bike_shed/budget/config" in entities
                assert configs["homeassistant/number/bike_shed/budget/config"] == b""  # not allowed
                station = json.loads(ha.on(f"{root}/station")[-1])
                assert station["budget_w"] == 600.0 and station["budget_source"] == "static"
                port = json.loads(ha.on(f"{root}/port/1")[-1])
                assert port["state"] == "empty" and port["fault"] is None
                # Home Assistant restarts: its birth message brings everything again.
                before = len(ha.on("homeassistant/sensor/bike_shed/port1_power/config"))
                await ha.client.publish("homeassistant/status", b"online", qos=1)
                await ha.until(
                    lambda: len(ha.on("homeassistant/sensor/bike_shed/port1_power/config")) > before
                )
                assert publisher.connected
            # A clean stop says offline at once.
            await ha.until(lambda: ha.on(f"{root}/availability")[-1] == b"offline")


async def test_last_will_says_offline_when_the_link_dies(tmp_path: Path) -> None:
    with mosquitto(tmp_path) as broker:
        async with (
            make_bench(tmp_path, ports=1) as bench,
            listening(broker) as ha,
            publishing(bench, broker_config(broker), tmp_path) as (publisher, _),
        ):
            availability = "pev-charger/bike_shed/availability"
            await ha.until(lambda: ha.on(availability) == [b"online"])
            assert publisher.client is not None
            # Cut the TCP connection under the client, as a pulled network cable would.
            sock = publisher.client._client.socket()
            assert isinstance(sock, socket.socket)
            sock.shutdown(socket.SHUT_RDWR)
            await ha.until(lambda: b"offline" in ha.on(availability))


@pytest.mark.parametrize("allowed", [True, False])
async def test_budget_from_home_assistant(tmp_path: Path, allowed: bool) -> None:
    with mosquitto(tmp_path) as broker:
        async with make_bench(tmp_path, ports=1) as bench, listening(broker) as ha:
            config = broker_config(broker, allow_budget_set=allowed)
            async with publishing(bench, config, tmp_path) as (publisher, manager):
                number = "homeassistant/number/bike_shed/budget/config"
                await ha.until(lambda: bool(ha.on(number)))
                assert bool(ha.on(number)[-1]) is allowed
                await ha.client.publish("pev-charger/bike_shed/budget/set", b"250", qos=1)
                if allowed:
                    await ha.until(lambda: bench.station.budget_w == 250.0)
                    assert manager.view()["active"] == "manual"
                    await ha.until(
                        lambda: (
                            json.loads(ha.on("pev-charger/bike_shed/station")[-1])["budget_w"]
                            == 250.0
                        )
                    )
                else:
                    await ha.until(lambda: publisher.refused == 1)
                    assert bench.station.budget_w == 600.0
                    assert manager.manual_w is None
                await ha.client.publish("pev-charger/bike_shed/budget/set", b"lots", qos=1)
                await ha.until(lambda: publisher.refused == (1 if allowed else 2))


async def test_username_and_password(tmp_path: Path) -> None:
    passwords = tmp_path / "passwd"
    command = ["mosquitto_passwd", "-b", "-c", str(passwords), "station", "s3cret"]
    await asyncio.to_thread(subprocess.run, command, check=True, timeout=10)
    with mosquitto(tmp_path, password_file=passwords) as broker:
        async with make_bench(tmp_path, ports=1) as bench:
            good = broker_config(broker, username="station", password="s3cret")
            async with publishing(bench, good, tmp_path) as (publisher, _):
                await until(lambda: publisher.subscribed)
            bad = broker_config(broker, username="station", password="wrong")
            async with publishing(bench, bad, tmp_path) as (publisher, _):
                await until(lambda: publisher.failed >= 1)  # the broker refuses it
                assert not publisher.subscribed


async def test_tls_with_the_broker_certificate(tmp_path: Path) -> None:
    cert, key = await asyncio.to_thread(self_signed, tmp_path)
    with mosquitto(tmp_path, tls=(cert, key)) as broker:
        async with make_bench(tmp_path, ports=1) as bench:
            trusted = broker_config(broker, tls=True, ca_file=str(cert))
            async with publishing(bench, trusted, tmp_path) as (publisher, _):
                await until(lambda: publisher.subscribed)
            untrusted = broker_config(broker, tls=True)  # the system's CAs do not know it
            async with publishing(bench, untrusted, tmp_path) as (publisher, _):
                await until(lambda: publisher.failed >= 1)  # the handshake fails
                assert not publisher.subscribed


def test_payload_parsing() -> None:
    assert parse_power(b"1234.5", None) == 1234.5
    assert parse_power(b'{"ENERGY": {"Power": 812}}', "ENERGY.Power") == 812.0
    assert parse_power(b"1.5", None, scale=1000) == 1500.0
    for bad, key in ((b"", None), (b"nan", None), (b'{"apower": null}', "apower"), (b"on", None)):
        with pytest.raises(ValueError):
            parse_power(bad, key)


async def test_budget_follows_a_topic_and_falls_back_when_it_stops(tmp_path: Path) -> None:
    with mosquitto(tmp_path) as broker:
        async with make_bench(tmp_path, ports=1) as bench, listening(broker) as ha:
            config = BudgetConfig(
                source="mqtt", max_import_w=3000.0, fallback_w=100.0, stale_after_s=5.0,
                max_w=600.0, raise_dwell_s=0.0, smoothing_s=0.0,
                mqtt=MqttMeterConfig(topic="tele/meter/SENSOR", key="ENERGY.Power"),
            )  # fmt: skip
            manager = BudgetManager(
                config, bench.station, bench.clock, static_w=600.0,
                manual_file=ManualBudgetFile(tmp_path / "budget.json"),
            )  # fmt: skip
            manager.load()
            feed = MqttMeter(broker_config(broker), config.mqtt, bench.clock, manager.observe)
            tasks = [asyncio.create_task(feed.run()), asyncio.create_task(manager.run())]
            try:
                await ha.until(lambda: feed.subscribed)
                assert bench.station.budget_w == 100.0

                async def reading(watts: float) -> None:
                    body = json.dumps({"ENERGY": {"Power": watts}}).encode()
                    await ha.client.publish("tele/meter/SENSOR", body)
                    await ha.until(lambda: manager.site_w == watts)

                await reading(2500.0)
                assert bench.station.budget_w == 500.0
                await reading(2700.0)
                assert bench.station.budget_w == 300.0  # lowered on the message itself
                # The topic goes quiet: fallback within stale_after_s, never more.
                await bench.run_for(5.0)
                assert bench.station.budget_w == 300.0
                await bench.run_for(1.1)
                assert bench.station.budget_w == 100.0 and manager.view()["stale"]
                await ha.client.publish("tele/meter/SENSOR", b"garbage")
                await bench.run_for(2.0)
                assert bench.station.budget_w == 100.0  # nonsense is no reading
                await reading(2800.0)
                assert bench.station.budget_w == 200.0 and not manager.view()["stale"]
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10.0)
