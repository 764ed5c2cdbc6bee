"""How fast every switch is open after the safety loop stalls, and after a switch will not open.

Eight ports charging on the bench's simulated hardware in virtual time (the scenario rig). A stall
is the safety loop's pass taking 150 ms (longer than the board's 100 ms hold): the simulated board
drops every switch when the kicks stop, and the core, at its next pass, opens every coil and trips
every port, so nothing closes again when the kicks resume. A GPIO write failure is one port's
switch refusing to open on an over-current: the kicks stop for good and the board drops the
others. Times are from the event to the moment the last switch stops conducting (the board) and
to the moment the last coil is commanded open (the station).
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import table
from firmware.station.port import PortState
from firmware.station.station import StationSettings
from hal.config import bench_config
from hal.errors import RelayError
from hal.sim.relay import SimRelay
from hal.sim.vtime import LoopClock, run_virtual
from host.scenario.rig import Rig

MODELS = {1: "ebike-48v-13s", 2: "scooter-ninebot-max", 3: "kids-scooter-24v", 4: "eunicycle-84v"}
STALL_S = 0.15


def _relays(rig: Rig) -> list[SimRelay]:
    relays = [rig.hardware.ports[pid].relay for pid in MODELS]
    assert all(isinstance(r, SimRelay) for r in relays)
    return relays  # type: ignore[return-value]


async def _charging(rig: Rig) -> None:
    for port_id, model in MODELS.items():
        await rig.plug(port_id, model, soc_pct=20.0, seed=port_id)
    for port_id in MODELS:
        port = rig.port(port_id)
        await rig.wait_for(lambda port=port: port.state == PortState.READY, 10.0)  # type: ignore[misc]
        await rig.station.start(port_id)
    ok = await rig.wait_for(
        lambda: all(rig.port(p).state == PortState.CHARGING for p in MODELS), 20.0
    )
    if not ok:
        raise RuntimeError("the ports did not all charge")
    await rig.clock.sleep(2.0)


async def _until_all_open(rig: Rig, since: float) -> tuple[float, float]:
    relays = _relays(rig)
    dropped = commanded = None
    while dropped is None or commanded is None:
        now = rig.clock.monotonic()
        if dropped is None and not any(r.conducting for r in relays):
            dropped = now - since
        if commanded is None and not any(r.commanded for r in relays):
            commanded = now - since
        if now - since > 5.0:
            raise RuntimeError("a switch stayed closed")
        await rig.clock.sleep(0.001)
    return dropped, commanded


async def stall() -> dict[str, float]:
    clock = LoopClock()
    rig = Rig(clock, bench_config(4), StationSettings(budget_w=2000.0))
    async with rig.running():
        await _charging(rig)
        core = rig.station.safety
        inner = core.pass_once
        stalled = [False]

        async def slow_pass() -> None:
            if not stalled[0]:
                stalled[0] = True
                await clock.sleep(STALL_S)  # the loop is held up: no kicks meanwhile
            await inner()

        core.pass_once = slow_pass  # type: ignore[method-assign]
        started = clock.monotonic()
        dropped, commanded = await _until_all_open(rig, started)
        await clock.sleep(1.0)
        reclosed = any(r.conducting for r in _relays(rig))
        codes = {rig.port(p).fault.code for p in MODELS if rig.port(p).fault}  # type: ignore[union-attr]
    return {
        "dropped_ms": dropped * 1000,
        "commanded_ms": commanded * 1000,
        "reclosed": float(reclosed),
        "watchdog_trips": float(codes == {"watchdog"}),
    }


async def gpio_failure() -> dict[str, float]:
    clock = LoopClock()
    rig = Rig(clock, bench_config(4), StationSettings(budget_w=2000.0))
    async with rig.running():
        await _charging(rig)
        broken = rig.hardware.ports[1].relay

        def refuse() -> None:
            raise RelayError("GPIO 17: cannot drive the relay: [Errno 5] Input/output error")

        broken.open_now = refuse  # type: ignore[method-assign]
        started = clock.monotonic()
        rig.world.ports[1].stuck_reading = (50.0, 9.0)  # far above the port: trips at once
        dropped, _ = await _until_all_open_conducting(rig, started)
        stopped = rig.station.safety.kicks_stopped is not None
    return {"dropped_ms": dropped * 1000, "kicks_stopped": float(stopped)}


async def _until_all_open_conducting(rig: Rig, since: float) -> tuple[float, float]:
    relays = _relays(rig)
    while any(r.conducting for r in relays):
        if rig.clock.monotonic() - since > 5.0:
            raise RuntimeError("a switch kept conducting")
        await rig.clock.sleep(0.001)
    return rig.clock.monotonic() - since, 0.0


def run(smoke: bool = False) -> dict[str, Any]:
    started = time.perf_counter()
    a = run_virtual(stall())
    b = run_virtual(gpio_failure())
    print(
        table(
            ["event", "last switch stops conducting (ms)", "last coil commanded open (ms)"],
            [
                [
                    f"safety loop stalled {STALL_S * 1000:.0f} ms",
                    a["dropped_ms"],
                    a["commanded_ms"],
                ],
                ["a switch's GPIO write fails", b["dropped_ms"], float("nan")],
            ],
        )
    )
    print(
        f"after the stall: every port tripped 'watchdog': {bool(a['watchdog_trips'])}; "
        f"a switch closed again by itself: {bool(a['reclosed'])}; after the GPIO failure the "
        f"kicks stopped: {bool(b['kicks_stopped'])} ({time.perf_counter() - started:.1f} s)"
    )
    return {"stall": a, "gpio_failure": b}
