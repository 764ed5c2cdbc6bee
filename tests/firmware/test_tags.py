"""Tags held to a port's reader, read by the real adafruit PN532 driver from the simulated chip,
on a bench station in simulated time; and the configuration that names the readers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from firmware.config import ConfigError, parse_config
from firmware.station.port import PortState
from firmware.tags import REPEAT_S, TagDesk
from hal.rfid import ReaderConfig, RfidConfig, build_readers
from hal.sim.pn532 import SimPN532
from tests.support import Bench, make_bench

UID = bytes.fromhex("04A1B2C3D4E5F6")


@asynccontextmanager
async def tag_bench(tmp_path: Path) -> AsyncIterator[tuple[Bench, TagDesk, dict[int, SimPN532]]]:
    async with make_bench(tmp_path, ports=2) as bench:
        readers = build_readers(RfidConfig("sim", (ReaderConfig(1), ReaderConfig(2)), 0.1))
        assert not readers.errors
        desk = TagDesk(bench.station, bench.clock, readers.by_port, 0.1)
        task = asyncio.create_task(desk.run())
        try:
            yield bench, desk, readers.chips
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def hold(bench: Bench, chip: SimPN532, uid: bytes, seconds: float = 1.0) -> None:
    chip.present(uid)
    await bench.run_for(seconds, step=0.05)
    chip.remove()


async def test_a_tag_starts_its_port_and_the_same_tag_stops_it(tmp_path: Path) -> None:
    async with tag_bench(tmp_path) as (bench, _, chips):
        await bench.bay.attach(1, "ebike-36v-500wh", 40.0)
        await bench.run_until(lambda: bench.port(1).state == PortState.READY)
        with bench.station.events.subscribe() as events:
            await hold(bench, chips[1], UID)
            await bench.run_until(lambda: bench.port(1).state == PortState.CHARGING)
            said = [e["data"] for e in _drain(events.queue) if e["type"] == "tag"]
        assert said == [{"port": 1, "text": "Port 1: tag read, starting", "refused": False}]
        session = bench.port(1).session
        assert session is not None and session.id_tag == UID.hex().upper()

        await bench.run_for(REPEAT_S)
        await hold(bench, chips[1], bytes.fromhex("DEADBEEF"))  # another tag: not its session
        assert bench.port(1).state == PortState.CHARGING
        await bench.run_for(REPEAT_S)
        await hold(bench, chips[1], UID)
        await bench.run_until(lambda: bench.port(1).state == PortState.DONE)
        assert session.end_reason == "user"


async def test_a_tag_on_a_port_that_cannot_start_says_why(tmp_path: Path) -> None:
    async with tag_bench(tmp_path) as (bench, desk, chips):
        with bench.station.events.subscribe() as events:
            await hold(bench, chips[2], UID)
            said = [e["data"] for e in _drain(events.queue) if e["type"] == "tag"]
        assert said == [
            {
                "port": 2,
                "text": "Tag not taken: port 2 is not ready to start (Free)",
                "refused": True,
            }
        ]
        assert bench.port(2).session is None
        assert (
            await desk.presented(2, UID.hex().upper()) is None
        )  # the same presentation, read again


async def test_a_reader_that_stops_answering_is_reported_and_retried(tmp_path: Path) -> None:
    async with tag_bench(tmp_path) as (bench, desk, chips):
        reader = desk.readers[1]
        bus = reader.driver._i2c.i2c  # type: ignore[attr-defined]
        bus.fail_next[0x24] = 10_000
        await bench.run_for(1.0, step=0.05)
        assert 1 in desk.errors
        bus.fail_next[0x24] = 0
        await bench.run_for(6.0, step=0.1)
        assert 1 not in desk.errors
        await bench.bay.attach(1, "ebike-36v-500wh", 40.0)
        await bench.run_until(lambda: bench.port(1).state == PortState.READY)
        await hold(bench, chips[1], UID)
        await bench.run_until(lambda: bench.port(1).state == PortState.CHARGING)


def station(rfid: dict[str, Any]) -> dict[str, Any]:
    port = {"id": 1, "i2c_address": 0x40, "relay_gpio": 17, "max_current_a": 5.0}
    second = {**port, "id": 2, "i2c_address": 0x41, "relay_gpio": 27}
    return {"hal": {"backend": "sim"}, "ports": [port, second], "rfid": rfid}


def test_the_configuration_names_the_readers() -> None:
    data = station({"backend": "pn532", "readers": [{"port": 1, "i2c_bus": 3}]})
    config = parse_config(data, "station.toml", offline=True)
    assert config.rfid.readers == (ReaderConfig(port=1, i2c_bus=3, address=0x24),)
    with pytest.raises(ConfigError, match="port must name one of the ports"):
        parse_config(station({"readers": [{"port": 99}]}), "station.toml", offline=True)
    with pytest.raises(ConfigError, match="unknown key 'reader'"):
        parse_config(station({"reader": []}), "station.toml", offline=True)
    with pytest.raises(ConfigError, match="same bus and address"):
        two = [{"port": 1}, {"port": 2}]
        parse_config(station({"readers": two}), "station.toml", offline=True)


def _drain(queue: asyncio.Queue[dict[str, object]]) -> list[dict[str, object]]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out
