"""Random interleavings of everything that can happen to four ports, in virtual time.

After every step: a closed switch only in a live session of that port; at most one session per
port; the granted power within the budget once the allocator has had its round. At the end, after
shutdown: every session that began has exactly one record, and it is ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.pevlink import Hello, Stop
from firmware.station.port import PortState
from firmware.station.safety import Trip
from firmware.station.states import LIVE_STATES
from firmware.station.station import StationError, StationSettings
from hal.sim.vtime import LoopClock, run_virtual
from host.scenario.rig import Rig, hal_layout
from host.vehicle.agent import battery_message

PORTS = (1, 2, 3, 4)
MODELS = ("ebike-36v-500wh", "ebike-48v-13s", "eskate-36v-360wh", "scooter-xiaomi-m365")
OPS = (
    "start",
    "double_start",
    "stop",
    "vehicle_stop",
    "trip",
    "reset",
    "unplug",
    "plug",
    "batt",
    "hello",
    "silence",
    "budget",
)

steps = st.lists(
    st.tuples(
        st.sampled_from(OPS),
        st.sampled_from(PORTS),
        st.sampled_from((0.0, 150.0, 300.0, 900.0)),
        st.floats(0.0, 3.0),
    ),
    min_size=5,
    max_size=18,
)


def check_switches(rig: Rig) -> None:
    for port in rig.station.ports.values():
        if port.relay_closed:
            assert port.state in LIVE_STATES, f"port {port.port_id} closed in {port.state}"
            assert port.session is not None and not port.session.ended


async def act(rig: Rig, op: str, pid: int, watts: float, models: dict[int, str]) -> None:
    station = rig.station
    port = station.ports[pid]
    plugged = rig.plugged.get(pid)
    with contextlib.suppress(StationError):
        if op == "start":
            await station.start(pid)
        elif op == "double_start":
            await asyncio.gather(station.start(pid), station.start(pid), return_exceptions=True)
        elif op == "stop" and port.session is not None:
            await station.stop(pid)
        elif op == "reset" and port.state == PortState.FAULT:
            await station.reset(pid)
        elif op == "trip":
            port.trip(Trip("overcurrent", "A test trip"))
        elif op == "budget":
            station.set_budget(watts)
        elif op == "plug" and plugged is None:
            await rig.plug(pid, models[pid], soc_pct=40.0)
    if plugged is None:
        return
    link = plugged.agent.link
    if op == "unplug":
        await rig.unplug(pid)
    elif op == "silence":
        link.muted = not link.muted
    elif op in ("vehicle_stop", "batt", "hello") and not link.muted:
        message: Any = {
            "vehicle_stop": Stop("vehicle", "Stopped from the vehicle"),
            "batt": dataclasses.replace(battery_message(plugged.vehicle), soc_pct=50.0),
            "hello": Hello((1,), "ebike", "Test", "Again"),
        }[op]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(link.request(message), 5.0)


async def scenario(plan: list[tuple[str, int, float, float]]) -> None:
    clock = LoopClock()
    rig = Rig(clock, hal_layout("ina228", 4), StationSettings(budget_w=600.0))
    begun: dict[str, int] = {}
    rig.station.on_start = lambda port, session: begun.__setitem__(
        session.public_token, port.port_id
    )
    models = dict(zip(PORTS, MODELS, strict=True))
    async with rig.running():
        for pid in PORTS:
            await rig.plug(pid, models[pid], soc_pct=40.0)
        await clock.sleep(3.0)
        for op, pid, watts, pause in plan:
            await act(rig, op, pid, watts, models)
            check_switches(rig)
            await clock.sleep(pause)
            check_switches(rig)
            await clock.sleep(4.0)  # an allocator round, a settle, a ramp-down
            check_switches(rig)
            station = rig.station
            granted = sum(
                p.grant_a * p.battery.v_max_v
                for p in station.ports.values()
                if p.battery is not None and p.relay_closed and not p.busy
            )
            assert granted <= station.budget_w + 1.0, (granted, station.budget_w)
        task = rig._tasks[0]
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    records = rig.recorder.sessions
    assert len(records) == len(begun), "every session that began has exactly one record"
    assert all(r["status"] == "ended" for r in records.values()), records


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(steps)
def test_random_interleavings_keep_every_invariant(
    plan: list[tuple[str, int, float, float]],
) -> None:
    run_virtual(scenario(plan))
