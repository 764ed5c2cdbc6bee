"""One port's serial line failing is that port's fault alone: the others keep charging."""

from __future__ import annotations

from firmware.station.port import PortState
from tests.support import Bench

BIKE = "ebike-36v-500wh"
KIDS = "kids-scooter-24v"  # port 3 is the bench's small-pack port (INA219, to 25.5 V)


async def test_a_lost_serial_line_trips_its_port_only_and_comes_back(bench: Bench) -> None:
    for port_id, model in ((1, BIKE), (2, BIKE), (3, KIDS), (4, BIKE)):
        await bench.charging(port_id, model, 40.0)
    port = bench.port(1)
    closes_before = {pid: bench.port(pid).relay_closed for pid in (2, 3, 4)}
    assert all(closes_before.values())
    bench.hardware.ports[1].link.port.close()  # the USB-serial adapter is pulled out
    await bench.run_until(lambda: port.state == PortState.FAULT, timeout=2.0)
    assert port.fault is not None and port.fault.code == "link"
    assert not port.relay_closed
    await bench.run_for(3.0, step=0.02)
    for pid in (2, 3, 4):  # nobody else noticed
        assert bench.port(pid).state == PortState.CHARGING
        assert bench.port(pid).relay_closed
    # The device is back (the same path opens again): the vehicle identifies anew and charges.
    await bench.run_until(lambda: port.link_down is None, timeout=10.0, step=0.05)
    await bench.run_until(lambda: port.state == PortState.READY, timeout=30.0, step=0.05)
    await bench.station.start(1)
    await bench.run_until(lambda: port.state == PortState.CHARGING, timeout=10.0)
