"""The bench's RFID/NFC readers: a simulated PN532 on every port, read through the real adafruit
driver, and the routes the /sim page uses to hold a tag to one of them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from firmware.config import StationConfig
from firmware.daemon import Daemon
from firmware.web.errors import ApiFailure
from firmware.web.inputs import read_json
from hal.clock import Clock
from hal.rfid import ReaderConfig, RfidConfig
from hal.sim.pn532 import SimPN532

HOLD_S = 1.5
"""How long a tag presented from the page stays in the reader's field (simulated seconds)."""


@dataclass
class BenchReaders:
    chips: dict[int, SimPN532]
    clock: Clock
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    """Tags to take away after HOLD_S: owned here, cancelled when the application stops."""


READERS_KEY = web.AppKey("bench_readers", BenchReaders)


def with_simulated_readers(config: StationConfig) -> StationConfig:
    readers = tuple(ReaderConfig(port=p.id) for p in config.hal.ports)
    return replace(config, rfid=RfidConfig(backend="sim", readers=readers))


def parse_uid(raw: Any) -> bytes:
    if not isinstance(raw, str):
        raise ApiFailure("bad_request", "'uid' must be the tag's UID in hex, e.g. 04A1B2C3.")
    text = raw.replace(":", "").replace(" ", "")
    try:
        uid = bytes.fromhex(text)
    except ValueError:
        raise ApiFailure("bad_request", "'uid' must be hex digits (0-9, A-F).") from None
    if len(uid) not in (4, 7, 10):
        raise ApiFailure("bad_request", "'uid' must be 4, 7 or 10 bytes (8, 14 or 20 digits).")
    return uid


async def get_readers(request: web.Request) -> web.Response:
    return web.json_response({"ports": sorted(request.app[READERS_KEY].chips)})


async def present_tag(request: web.Request) -> web.Response:
    bench = request.app[READERS_KEY]
    chips = bench.chips
    try:
        port_id = int(request.match_info["port_id"])
        chip = chips[port_id]
    except (ValueError, KeyError):
        raise ApiFailure("not_found", "No tag reader on that port.") from None
    data = await read_json(request)
    uid = parse_uid(data.get("uid"))
    chip.present(uid)

    async def take_away() -> None:
        await bench.clock.sleep(HOLD_S)
        chip.remove()

    task = asyncio.ensure_future(take_away())
    bench.tasks.add(task)
    task.add_done_callback(bench.tasks.discard)
    return web.json_response({"port": port_id, "uid": uid.hex().upper(), "held_s": HOLD_S})


def add_simulated_readers(daemon: Daemon) -> None:
    """The bench's tag routes; with no simulated readers (no ``--rfid``) they list none."""
    app = daemon.app
    chips = daemon.readers.chips if daemon.readers is not None else {}
    bench = app[READERS_KEY] = BenchReaders(chips, daemon.clock)
    app.router.add_get("/api/sim/rfid", get_readers)
    app.router.add_post("/api/sim/ports/{port_id}/tag", present_tag)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        yield
        for task in list(bench.tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*bench.tasks, return_exceptions=True)

    app.cleanup_ctx.append(lifecycle)
