"""The high-voltage port's ADS1115 browning out while a session charges: the part comes back
single-shot with a result register frozen at 0. The port faults ``sensor`` at the safety loop's
next pass or two, not seconds later as a vehicle whose pack "reads 0 V", and never feeds a pack it
cannot measure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from firmware.station.port import PortState
from firmware.station.station import StationSettings
from hal.config import bench_config
from hal.sim.ads1115 import CONFIG, MODE_SINGLE
from tests.support import Bench, make_bench

HV_PORT = 5
POLL = StationSettings().poll_period_s


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    async with make_bench(tmp_path, budget_w=900.0, hal=bench_config(4, hv_ports=1)) as b:
        yield b


async def test_a_reset_adc_faults_the_port_at_the_next_passes(bench: Bench) -> None:
    await bench.charging(HV_PORT, "eunicycle-126v", soc=30.0)
    await bench.settle_current(HV_PORT, 2.3, within=0.06)
    port = bench.port(HV_PORT)
    adc = bench.hardware.world.ports[HV_PORT].adc
    assert adc is not None
    adc.reset()
    took = await bench.run_until(lambda: port.state == PortState.FAULT, timeout=5.0, step=0.002)
    assert took <= 2 * POLL + 0.01, took
    assert port.fault is not None and port.fault.code == "sensor"
    assert "reset" in port.fault.text
    assert not port.relay_closed
    assert not adc.regs[CONFIG] & MODE_SINGLE  # armed again: converting continuously
