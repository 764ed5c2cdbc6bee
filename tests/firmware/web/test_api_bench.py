"""The bench's own routes (/api/sim/*): the catalog, plugging simulated vehicles in and out, and
their errors, which follow the same JSON shape and change nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from firmware.daemon import StoreHistory
from firmware.station.port import PortState
from firmware.web.app import create_app
from firmware.web.context import ApiSettings
from host.bench.station import add_sim_routes
from host.vehicle.catalog import load_catalog
from host.vehicle.faults import FaultKind
from tests.support import Bench

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


async def bench_client(bench: Bench, aiohttp_client: MakeClient) -> Client:
    settings = ApiSettings(
        operator_token="operator-secret",
        touchscreen_hosts=("127.0.0.1", "::1"),
        public_url="http://station.test:8080",
    )
    app = create_app(bench.station, settings, StoreHistory(bench.store))
    add_sim_routes(app, bench.bay)
    return await aiohttp_client(app)


async def assert_error(resp: Any, status: int, code: str) -> str:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    error = (await resp.json())["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and len(error["message"]) > 10
    return str(error["message"])


def attached(bench: Bench) -> dict[int, str]:
    return {pid: bay.vehicle.spec.id for pid, bay in bench.bay.bays.items()}


async def test_the_catalog_lists_models_and_fault_kinds(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await bench_client(bench, aiohttp_client)
    resp = await client.get("/api/sim/catalog")
    assert resp.status == 200
    catalog = await resp.json()
    ids = [v["id"] for v in catalog["vehicles"]]
    assert ids == [spec.id for spec in load_catalog()]
    assert "ebike-36v-500wh" in ids and len(set(ids)) == len(ids)
    for vehicle in catalog["vehicles"]:
        assert vehicle["name"] and vehicle["type"] and vehicle["chemistry"]
        assert 0 < vehicle["v_nom"] < vehicle["v_max"]
        assert vehicle["capacity_wh"] > 0
    kinds = {f["kind"]: f["description"] for f in catalog["faults"]}
    assert set(kinds) == {k.value for k in FaultKind}
    assert all(kinds.values())


async def test_a_vehicle_attached_over_http_identifies_and_charges(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await bench_client(bench, aiohttp_client)
    resp = await client.post(
        "/api/sim/ports/2/attach", json={"model": "ebike-36v-500wh", "soc": 30, "temperature_c": 20}
    )
    assert resp.status == 201
    ports = {p["id"]: p for p in (await resp.json())["ports"]}
    assert ports[2]["vehicle"]["model"] == "ebike-36v-500wh"
    assert ports[1]["vehicle"] is None and ports[2]["pty"]
    await bench.run_until(lambda: bench.port(2).state == PortState.READY)
    assert (await client.post("/api/ports/2/start")).status == 201
    await bench.run_until(lambda: bench.port(2).state == PortState.CHARGING)

    view = {p["id"]: p for p in (await (await client.get("/api/sim/ports")).json())["ports"]}
    assert view[2]["vehicle"]["model"] == "ebike-36v-500wh"

    unplug = await client.post("/api/sim/ports/2/detach")
    assert unplug.status == 200
    await bench.run_until(lambda: not bench.hardware.ports[2].relay.is_closed, timeout=5)
    assert attached(bench) == {}


async def test_attaching_an_unknown_model_is_refused_clearly(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await bench_client(bench, aiohttp_client)
    for body in ({"model": "bosch-powerpack-9000"}, {"model": 7}, {}, {"soc": 20}):
        resp = await client.post("/api/sim/ports/1/attach", json=body)
        message = await assert_error(resp, 400, "bad_request")
        assert "model" in message and "/api/sim/catalog" in message
    assert attached(bench) == {}
    assert bench.port(1).state == PortState.EMPTY


async def test_attaching_with_bad_values_is_refused(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await bench_client(bench, aiohttp_client)
    refused: list[tuple[str, Any, int, str]] = [
        ("/api/sim/ports/9/attach", {"model": "ebike-36v-500wh"}, 404, "not_found"),
        ("/api/sim/ports/x/attach", {"model": "ebike-36v-500wh"}, 404, "not_found"),
        ("/api/sim/ports/1/attach", {"model": "ebike-36v-500wh", "soc": 101}, 400, "bad_request"),
        ("/api/sim/ports/1/attach", {"model": "ebike-36v-500wh", "soc": "20"}, 400, "bad_request"),
        (
            "/api/sim/ports/1/attach",
            {"model": "ebike-36v-500wh", "temperature_c": True},
            400,
            "bad_request",
        ),
        ("/api/sim/ports/1/attach", {"model": "ebike-36v-500wh", "name": ""}, 400, "bad_request"),
        ("/api/sim/ports/1/attach", "not json", 400, "bad_json"),
        ("/api/sim/ports/1/fault", {"kind": "over_temperature"}, 409, "conflict"),
        ("/api/sim/ports/1/stop", None, 409, "conflict"),
        ("/api/sim/ports/1/detach", None, 409, "conflict"),
    ]
    for path, body, status, code in refused:
        if isinstance(body, str):
            resp = await client.post(path, data=body.encode())
        else:
            resp = await client.post(path, json=body)
        await assert_error(resp, status, code)
    assert attached(bench) == {}
    assert all(p.state == PortState.EMPTY for p in bench.station.ports.values())


async def test_attaching_to_an_occupied_port_is_a_conflict(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await bench_client(bench, aiohttp_client)
    first = await client.post("/api/sim/ports/1/attach", json={"model": "ebike-36v-500wh"})
    assert first.status == 201
    await bench.run_until(lambda: bench.port(1).state == PortState.READY)
    vehicle = bench.bay.bays[1].vehicle

    second = await client.post("/api/sim/ports/1/attach", json={"model": "scooter-xiaomi-m365"})
    message = await assert_error(second, 409, "conflict")
    assert "port 1" in message and "unplug" in message
    assert bench.bay.bays[1].vehicle is vehicle
    await bench.run_for(1.0)
    assert bench.port(1).state == PortState.READY
    assert bench.port(1).battery is not None
    assert bench.port(1).battery.v_max_v == vehicle.spec.v_max


async def test_an_unknown_fault_kind_lists_the_kinds(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await bench_client(bench, aiohttp_client)
    await bench.charging(1, "ebike-36v-500wh", 40.0)
    resp = await client.post("/api/sim/ports/1/fault", json={"kind": "lightning"})
    message = await assert_error(resp, 400, "bad_request")
    assert all(k.value in message for k in FaultKind)
    await bench.run_for(1.0)
    assert bench.port(1).state == PortState.CHARGING


async def test_an_injected_fault_opens_the_relay_and_shows_on_the_port(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await bench_client(bench, aiohttp_client)
    await bench.charging(1, "ebike-36v-500wh", 40.0)
    resp = await client.post("/api/sim/ports/1/fault", json={"kind": "bms_stop"})
    assert resp.status == 200
    await bench.run_until(lambda: bench.port(1).state == PortState.FAULT, timeout=10)
    assert not bench.hardware.ports[1].relay.is_closed
    port = await (await client.get("/api/ports/1")).json()
    assert port["state"] == "fault" and port["fault"]["text"]
    assert port["relay_closed"] is False


async def test_the_speed_of_a_hand_driven_clock_cannot_change(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await bench_client(bench, aiohttp_client)
    await assert_error(await client.put("/api/sim/speed", json={"speed": 500}), 400, "bad_request")
    await assert_error(await client.put("/api/sim/speed", json={"speed": 5}), 409, "conflict")
    assert (await (await client.get("/api/sim/speed")).json()) == {"speed": 1.0}


async def test_a_pack_on_a_port_leaves_its_pty_to_an_outside_device(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await bench_client(bench, aiohttp_client)
    resp = await client.post(
        "/api/sim/ports/2/pack", json={"model": "ebike-36v-500wh", "soc": 35, "temperature_c": 20}
    )
    assert resp.status == 201, await resp.text()
    port = next(p for p in (await resp.json())["ports"] if p["id"] == 2)
    assert port["vehicle"] is None and port["pty"] == bench.hardware.ports[2].peer_path
    assert port["pack"]["model"] == "ebike-36v-500wh" and port["pack"]["soc_pct"] == 35
    assert bench.hardware.world is not None and bench.hardware.world.ports[2].load is not None
    # one battery per port: neither a second pack nor a simulated vehicle
    await assert_error(
        await client.post("/api/sim/ports/2/pack", json={"model": "ebike-36v-500wh"}),
        409,
        "conflict",
    )
    await assert_error(
        await client.post("/api/sim/ports/2/attach", json={"model": "ebike-36v-500wh"}),
        409,
        "conflict",
    )
    await assert_error(
        await client.post("/api/sim/ports/3/pack", json={"model": "no-such", "soc": 10}),
        400,
        "bad_request",
    )
    resp = await client.post("/api/sim/ports/2/detach")
    assert resp.status == 200
    assert next(p for p in (await resp.json())["ports"] if p["id"] == 2)["pack"] is None
    assert bench.hardware.world.ports[2].load is None


async def test_the_station_page_shows_the_note_the_composition_root_gives(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    from firmware.web.pages import PAGE_NOTE_KEY, PageNote

    settings = ApiSettings(None, ("127.0.0.1",), "http://station.test:8080")
    plain = await aiohttp_client(create_app(bench.station, settings, StoreHistory(bench.store)))
    assert 'id="page-note"' not in await (await plain.get("/")).text()
    app = create_app(bench.station, settings, StoreHistory(bench.store))
    app[PAGE_NOTE_KEY] = PageNote(
        "Bench: port 1: /dev/pts/9 <b>", "Plug in a virtual vehicle", "/sim"
    )
    page = await (await (await aiohttp_client(app)).get("/")).text()
    assert '<a href="/sim">Plug in a virtual vehicle</a>' in page
    assert "/dev/pts/9 &lt;b&gt;" in page
