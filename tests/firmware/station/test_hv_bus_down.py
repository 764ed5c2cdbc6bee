"""The high-voltage port's CAN bus going away while a session charges (SocketCAN's interface down;
python-can's virtual bus shut down here, whose reads and writes then raise ``CanOperationError`` as
SocketCAN's do on ``ENETDOWN``): the stage's watch reads every 0.25 s, so the port faults and opens
its switch at its next read, not seconds later when some other call happens to touch the bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from firmware.station.port import PortState
from firmware.station.stage import WATCH_PERIOD_S
from hal.config import bench_config
from hal.elcon import ElconStage
from hal.stages import LazyStage
from tests.support import Bench, make_bench

HV_PORT = 5


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    async with make_bench(tmp_path, budget_w=900.0, hal=bench_config(4, hv_ports=1)) as b:
        yield b


async def test_a_can_bus_that_goes_down_faults_the_port_at_the_next_read(bench: Bench) -> None:
    await bench.charging(HV_PORT, "eunicycle-126v", soc=30.0)
    await bench.settle_current(HV_PORT, 2.3, within=0.06)
    port = bench.port(HV_PORT)
    stage = port.io.stage
    assert isinstance(stage, LazyStage) and isinstance(stage.inner, ElconStage)
    stage.inner.bus.shutdown()
    took = await bench.run_until(lambda: port.state == PortState.FAULT, timeout=10.0)
    assert took <= 4 * WATCH_PERIOD_S, took
    assert port.fault is not None and port.fault.code == "stage"
    assert not port.relay_closed
