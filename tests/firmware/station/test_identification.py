"""T_IDENT: a device that talks on a port but never identifies gets asked to start over, once."""

from __future__ import annotations

import pytest

from firmware.pevlink import Telemetry, decode, encode
from firmware.pevlink.messages import Boot
from firmware.pevlink.timers import T_IDENT
from firmware.station.port import PortState
from hal.sim.serial_pty import open_peer
from tests.support import Bench


async def test_a_device_that_never_says_hello_is_not_recognised_and_asked_to_reboot(
    bench: Bench,
) -> None:
    bench.hardware.world.ports[1].plugged = True  # type: ignore[union-attr]  # a plug is in
    peer = open_peer(bench.hardware.ports[1].peer_path)  # type: ignore[arg-type]
    try:
        # The station's start-up BOOT may still be on its way through the cable: not this one.
        while await peer.read(0.2):
            pass
        tel = Telemetry(soc_pct=50, voltage_v=38.0, current_a=0, temperature_c=25, flags=0)
        await peer.write(encode(tel, 1))
        await bench.run_until(lambda: bench.port(1).state == PortState.CONNECTED)
        received = b""
        elapsed = 0.0
        while elapsed < T_IDENT + 0.5:
            await peer.write(encode(tel, 2))
            await bench.run_for(0.5)
            elapsed += 0.5
            received += await peer.read(0.05)
        port = bench.port(1)
        assert port.state == PortState.CONNECTED
        assert "not recognised" in port.state_text
        assert not bench.hardware.ports[1].relay.is_closed
        lines = [line + b"\n" for line in received.split(b"\n") if line.startswith(b"$")]
        boots = [d for d in map(decode, lines) if isinstance(d.message, Boot)]
        assert len(boots) == 1 and boots[0].message.role == "station"
    finally:
        await peer.close()


async def test_a_vehicle_warning_is_shown_and_the_charge_goes_on(bench: Bench) -> None:
    from firmware.pevlink import Fault

    await bench.charging(1, "ebike-36v-500wh", 40.0)
    agent = bench.bay.bays[1].agent
    await agent.link.notify(Fault("bms", "warn", "Cell balance is off"))
    await bench.run_until(lambda: bench.port(1).warning is not None)
    assert bench.port(1).warning == "Vehicle warning: Cell balance is off"
    assert bench.station.port_view(bench.port(1))["warning"] == bench.port(1).warning
    await bench.run_for(2.0)
    assert bench.port(1).state == PortState.CHARGING
    assert bench.hardware.ports[1].relay.is_closed


async def test_a_departure_time_counts_from_the_battery_message_that_carried_it(
    bench: Bench,
) -> None:
    from dataclasses import replace

    await bench.bay.attach(1, "ebike-36v-500wh", 40.0)
    await bench.run_until(lambda: bench.port(1).state == PortState.READY)
    port = bench.port(1)
    assert port.battery is not None and port.battery_at is not None
    port.battery = replace(port.battery, departure_s=3600)  # "I leave in an hour"
    await bench.run_for(60.0, step=0.1)  # the rider takes a minute to press start
    await bench.station.start(1)
    await bench.run_until(lambda: bench.port(1).state == PortState.CHARGING)
    (demand,) = bench.station.demands(bench.clock.monotonic())
    assert demand.departure_at == pytest.approx(port.battery_at + 3600)
