"""The bench: the station on simulated hardware, with simulated vehicles you can plug in.

This is the composition root for bench mode (``pev-charger run --sim``): it builds the bench
configuration, and extends the daemon with a :class:`VehicleBay` (vehicles attached to ports
through their real pseudo-terminals, their batteries in the hardware world) and its HTTP routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from firmware.config import StationConfig, state_path
from firmware.daemon import Daemon
from firmware.station.station import Station
from firmware.web.errors import ApiFailure
from firmware.web.inputs import port_id_of, read_json
from firmware.web.pages import PAGE_NOTE_KEY, PageNote
from hal.clock import Clock, ScaledClock
from hal.config import bench_config
from hal.factory import Hardware
from hal.sim.serial_pty import open_peer
from host.bench.checkout import serve_demo_provider
from host.bench.external import ExternalPack
from host.bench.kicks import add_kick_routes
from host.bench.rfid_api import add_simulated_readers
from host.vehicle.agent import VehicleAgent
from host.vehicle.catalog import load_catalog
from host.vehicle.faults import FaultKind
from host.vehicle.model import SimVehicle
from host.vehicle.spec import VehicleSpec

log = logging.getLogger(__name__)


def bench_station_config(
    ports: int = 4, budget_w: float | None = None, stage_ports: int = 0, hv_ports: int = 0
) -> StationConfig:
    """Four simulated ports sharing 600 W by default: enough for two e-bikes at full power;
    ``stage_ports`` more behind simulated RD6006 stages, ``hv_ports`` more for packs to 126 V
    behind simulated TC/Elcon chargers (150 W more for each port)."""
    return StationConfig(
        name="pev-charger bench",
        budget_w=budget_w if budget_w is not None else 150.0 * (ports + stage_ports + hv_ports),
        hal=bench_config(ports, stage_ports, hv_ports),
        db_path=state_path("var/bench.db"),
        operator_token=os.environ.get("PEV_OPERATOR_TOKEN") or None,
    )


@dataclass
class Bay:
    """One port's attached vehicle."""

    vehicle: SimVehicle
    agent: VehicleAgent
    task: asyncio.Task[None]
    transport: Any


class VehicleBay:
    """Attaches simulated vehicles to the bench's ports, and takes them away again."""

    def __init__(
        self,
        hardware: Hardware,
        clock: Clock,
        station: Station | None = None,
        *,
        lan: bool = False,
    ) -> None:
        if hardware.world is None:
            raise ValueError("the bench needs simulated hardware")
        self.station = station
        self.lan = lan
        """Whether machines other than this one may use the simulator (``--sim-lan``)."""
        self.hardware = hardware
        self.world = hardware.world
        self.clock = clock
        self._base_hold_s = hardware.watchdog.hold_time_s
        self.catalog: dict[str, VehicleSpec] = {spec.id: spec for spec in load_catalog()}
        self.bays: dict[int, Bay] = {}
        self.packs: dict[int, ExternalPack] = {}
        """Ports with a pack and no simulated agent: an outside device speaks on their pty."""
        self._serial = 0

    def set_speed(self, speed: float) -> None:
        """Run simulated time ``speed`` times faster than real time.

        The safety loop and the watchdog keep their real-time pace (50 ms and 100 ms of real time),
        because a Python loop cannot poll 20 times faster than on the Pi; protocol timers scale
        with the clock, which is why the bench caps the speed at MAX_SPEED.
        """
        if isinstance(self.clock, ScaledClock):
            self.clock.speed = speed
        factor = max(1.0, speed)
        if self.station is not None:
            self.station.poll_period_s = self.station.settings.poll_period_s * factor
        self.hardware.watchdog.hold_time_s = self._base_hold_s * factor

    def port_ids(self) -> list[int]:
        return sorted(self.hardware.ports)

    async def attach(
        self,
        port_id: int,
        model: str,
        soc_pct: float = 20.0,
        temperature_c: float = 25.0,
        name: str | None = None,
        seed: int = 0,
    ) -> SimVehicle:
        if port_id not in self.hardware.ports:
            raise KeyError(port_id)
        if port_id in self.bays or port_id in self.packs:
            raise ValueError(f"port {port_id} already has a vehicle; unplug it first")
        spec = self.catalog[model]
        if name:
            spec = replace(spec, name=name)
        # Behind a station's stage a pack is bare, as real ones are: the stage limits its current.
        bare = self.world.ports[port_id].has_stage
        vehicle = SimVehicle(
            spec,
            soc_pct=soc_pct,
            temperature_c=temperature_c,
            seed=seed,
            on_board_controller=not bare,
        )
        peer_path = self.hardware.ports[port_id].peer_path
        if peer_path is None:
            raise ValueError(f"port {port_id} has no simulated cable to plug a vehicle into")
        transport = open_peer(peer_path)
        self._serial += 1
        agent = VehicleAgent(
            vehicle, transport, self.clock, serial=f"SIM-{port_id}-{self._serial:04d}", seed=seed
        )
        self.world.attach(port_id, vehicle)
        task = asyncio.create_task(agent.run(), name=f"vehicle-{port_id}")
        self.bays[port_id] = Bay(vehicle, agent, task, transport)
        return vehicle

    def plug_pack(
        self, port_id: int, model: str, soc_pct: float = 20.0, temperature_c: float = 25.0
    ) -> ExternalPack:
        """A pack on the port for an outside device (no simulated agent): it charges for real."""
        if port_id not in self.hardware.ports:
            raise KeyError(port_id)
        if port_id in self.bays or port_id in self.packs:
            raise ValueError(f"port {port_id} already has a vehicle; unplug it first")
        cable = self.world.ports[port_id].cable
        if cable is None:
            raise ValueError(f"port {port_id} has no simulated cable for a device to speak on")
        pack = ExternalPack(
            SimVehicle(self.catalog[model], soc_pct=soc_pct, temperature_c=temperature_c)
        )
        cable.tap = pack.hear
        self.world.attach(port_id, pack)
        self.packs[port_id] = pack
        return pack

    async def detach(self, port_id: int) -> None:
        if port_id in self.packs:
            del self.packs[port_id]
            cable = self.world.ports[port_id].cable
            if cable is not None:
                cable.tap = None
            self.world.detach(port_id)
            return
        bay = self.bays.pop(port_id, None)
        if bay is None:
            raise KeyError(port_id)
        self.world.detach(port_id)
        bay.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await bay.task
        with contextlib.suppress(Exception):
            await bay.transport.close()

    def inject(self, port_id: int, kind: FaultKind) -> None:
        bay = self.bays[port_id]
        if kind is FaultKind.UNPLUG:
            bay.agent.inject(kind)
            self.world.detach(port_id)
            return
        bay.agent.inject(kind)

    async def vehicle_stop(self, port_id: int) -> None:
        from firmware.pevlink import Stop

        bay = self.bays[port_id]
        bay.vehicle.set_grant(0.0)
        bay.agent.stop_sent = True
        await bay.agent.link.request(Stop("vehicle", "Stopped from the vehicle"))

    def view(self) -> list[dict[str, Any]]:
        out = []
        for port_id in self.port_ids():
            bay = self.bays.get(port_id)
            entry: dict[str, Any] = {
                "id": port_id,
                "pty": self.hardware.ports[port_id].peer_path,
                "vehicle": None,
                "pack": self.packs[port_id].view() if port_id in self.packs else None,
            }
            if bay is not None:
                entry["vehicle"] = {
                    "model": bay.vehicle.spec.id,
                    "name": bay.vehicle.spec.name,
                    **bay.vehicle.snapshot(),
                    **bay.agent.status(),
                }
            out.append(entry)
        return out

    async def aclose(self) -> None:
        for port_id in [*self.bays, *self.packs]:
            await self.detach(port_id)


BAY_KEY = web.AppKey("vehicle_bay", VehicleBay)
MAX_SPEED = 20.0
"""Above this, PEV Link's 0.5 s reply timer would be a few milliseconds of real time."""


def is_loopback(remote: str | None) -> bool:
    try:
        return ipaddress.ip_address((remote or "").split("%")[0]).is_loopback
    except ValueError:
        return False


def bench_bay(request: web.Request) -> VehicleBay:
    """The bay, for a client this bench lets in: this machine only, unless started ``--sim-lan``
    (the simulator can plug in vehicles and break them; a rider's phone on the LAN needs only the
    station's own pages)."""
    bay = request.app[BAY_KEY]
    if not bay.lan and not is_loopback(request.remote):
        raise ApiFailure(
            "forbidden",
            "The simulator answers this machine only; start the bench with --sim-lan to allow "
            "others.",
        )
    return bay


def _bay(request: web.Request) -> tuple[VehicleBay, int]:
    bay = bench_bay(request)
    return bay, port_id_of(request, bay.hardware.ports)


def _vehicle_fields(bay: VehicleBay, data: dict[str, Any]) -> tuple[str, float, float]:
    """model, soc and temperature_c of a request body, checked."""
    model = data.get("model")
    if not isinstance(model, str) or model not in bay.catalog:
        raise ApiFailure("bad_request", "'model' must be a vehicle id from /api/sim/catalog.")
    soc = data.get("soc", 20)
    temp = data.get("temperature_c", 25)
    for key, value, lo, hi in (("soc", soc, 0, 100), ("temperature_c", temp, -30, 70)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise ApiFailure("bad_request", f"'{key}' must be a number from {lo} to {hi}.")
    return model, float(soc), float(temp)


async def get_catalog(request: web.Request) -> web.Response:
    bay = bench_bay(request)
    return web.json_response(
        {
            "vehicles": [spec.public_view() for spec in bay.catalog.values()],
            "faults": [{"kind": k.value, "description": k.description} for k in FaultKind],
        }
    )


async def get_ports(request: web.Request) -> web.Response:
    return web.json_response({"ports": bench_bay(request).view()})


async def attach(request: web.Request) -> web.Response:
    bay, port_id = _bay(request)
    data = await read_json(request)
    model, soc, temp = _vehicle_fields(bay, data)
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or not 0 < len(name) <= 32):
        raise ApiFailure("bad_request", "'name' must be text of 1 to 32 characters.")
    try:
        await bay.attach(port_id, model, soc, temp, name)
    except ValueError as exc:
        raise ApiFailure("conflict", str(exc)) from None
    return web.json_response({"ports": bay.view()}, status=201)


async def plug_pack(request: web.Request) -> web.Response:
    """A pack on the port, and the port's pty free for an outside device to speak on."""
    bay, port_id = _bay(request)
    data = await read_json(request)
    model, soc, temp = _vehicle_fields(bay, data)
    try:
        bay.plug_pack(port_id, model, soc, temp)
    except ValueError as exc:
        raise ApiFailure("conflict", str(exc)) from None
    return web.json_response({"ports": bay.view()}, status=201)


async def inject(request: web.Request) -> web.Response:
    bay, port_id = _bay(request)
    data = await read_json(request)
    try:
        kind = FaultKind(data.get("kind"))
    except ValueError:
        kinds = ", ".join(k.value for k in FaultKind)
        raise ApiFailure("bad_request", f"'kind' must be one of: {kinds}.") from None
    if port_id not in bay.bays:
        raise ApiFailure("conflict", f"No vehicle is attached to port {port_id}.")
    bay.inject(port_id, kind)
    return web.json_response({"ports": bay.view()})


async def vehicle_stop(request: web.Request) -> web.Response:
    bay, port_id = _bay(request)
    if port_id not in bay.bays:
        raise ApiFailure("conflict", f"No vehicle is attached to port {port_id}.")
    try:
        await bay.vehicle_stop(port_id)
    except Exception as exc:
        raise ApiFailure("conflict", f"The station did not take the stop: {exc}") from None
    return web.json_response({"ports": bay.view()})


async def detach(request: web.Request) -> web.Response:
    bay, port_id = _bay(request)
    if port_id not in bay.bays and port_id not in bay.packs:
        raise ApiFailure("conflict", f"No vehicle is attached to port {port_id}.")
    await bay.detach(port_id)
    return web.json_response({"ports": bay.view()})


async def put_speed(request: web.Request) -> web.Response:
    bay = bench_bay(request)
    data = await read_json(request)
    speed = data.get("speed")
    if (
        isinstance(speed, bool)
        or not isinstance(speed, int | float)
        or not 0.1 <= speed <= MAX_SPEED
    ):
        raise ApiFailure("bad_request", f"'speed' must be a number from 0.1 to {MAX_SPEED:g}.")
    if not isinstance(bay.clock, ScaledClock):
        raise ApiFailure("conflict", "This bench runs on a clock whose speed cannot change.")
    bay.set_speed(float(speed))
    return web.json_response({"speed": bay.clock.speed})


async def get_speed(request: web.Request) -> web.Response:
    clock = bench_bay(request).clock
    return web.json_response({"speed": clock.speed if isinstance(clock, ScaledClock) else 1.0})


def add_sim_routes(app: web.Application, bay: VehicleBay) -> None:
    app[BAY_KEY] = bay
    app.router.add_get("/api/sim/catalog", get_catalog)
    app.router.add_get("/api/sim/ports", get_ports)
    app.router.add_post("/api/sim/ports/{port_id}/attach", attach)
    app.router.add_post("/api/sim/ports/{port_id}/pack", plug_pack)
    app.router.add_post("/api/sim/ports/{port_id}/fault", inject)
    app.router.add_post("/api/sim/ports/{port_id}/stop", vehicle_stop)
    app.router.add_post("/api/sim/ports/{port_id}/detach", detach)
    app.router.add_get("/api/sim/speed", get_speed)
    app.router.add_put("/api/sim/speed", put_speed)
    from host.bench.sim_page import add_sim_page

    add_sim_page(app)


def bench_extension(*, lan: bool = False) -> Callable[[Daemon], Awaitable[None]]:
    """The bench's extension of the daemon; ``lan`` opens the simulator to other machines."""

    async def extend(daemon: Daemon) -> None:
        await extend_with_bench(daemon, lan=lan)

    return extend


async def extend_with_bench(daemon: Daemon, *, lan: bool = False) -> None:
    """Adds the vehicle bay, its routes, and the world's physics task to a bench daemon (and the
    simulated site meter when the configuration reads its budget from one on this machine)."""
    if daemon.config.budget.source == "modbus" and daemon.config.budget.modbus.host == "127.0.0.1":
        from host.bench.meter_api import add_simulated_meter

        add_simulated_meter(daemon)
    bay = VehicleBay(daemon.hardware, daemon.clock, daemon.station, lan=lan)
    if isinstance(daemon.clock, ScaledClock):
        bay.set_speed(min(MAX_SPEED, daemon.clock.speed))
    add_sim_routes(daemon.app, bay)
    add_simulated_readers(daemon)
    daemon.app[PAGE_NOTE_KEY] = PageNote(
        f"Bench: each port is also a serial line for your own device ({serial_lines(daemon)}).",
        "Plug in a virtual vehicle",
        "/sim",
    )
    add_kick_routes(daemon.app, daemon.hardware.watchdog, daemon.clock)
    await serve_demo_provider(daemon)
    world = daemon.hardware.world
    assert world is not None
    tasks: list[asyncio.Task[None]] = []

    async def lifecycle(app: web.Application) -> Any:
        tasks.append(asyncio.create_task(world.run(), name="bench-world"))
        yield
        await bay.aclose()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    daemon.app.cleanup_ctx.append(lifecycle)


def serial_lines(daemon: Daemon) -> str:
    ports = daemon.hardware.ports
    return ", ".join(f"port {pid}: {ports[pid].peer_path}" for pid in sorted(ports))


def announce(daemon: Daemon) -> None:
    """The bench's start-up lines: where to plug in a virtual vehicle, or your own device."""
    config = daemon.config
    base = f"http://{config.http_host}:{config.http_port}"
    print(f"pev-charger bench: station page {base}/ ; plug in a virtual vehicle at {base}/sim")
    print(f"pev-charger bench: or your own device on a port's serial line: {serial_lines(daemon)}")
    print("pev-charger bench: give it a battery with POST /api/sim/ports/{id}/pack (docs/api.md)")
