"""The check between closing a switch and letting the vehicle draw: is this the declared pack?

The vehicle draws nothing until POWER, so the first readings after the switch closes show its pack
at rest: they must lie within the declared window and match the voltage it last reported. A wrong
or lying battery is stopped here, before any energy flows.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from firmware.pevlink.timers import I_BREAK_A, T_VERIFY
from firmware.station.safety import Trip, voltage_matches
from firmware.station.states import PortState
from hal.errors import SensorError

if TYPE_CHECKING:
    from firmware.station.port import PortController

VERIFY_SETTLE_S = 0.1
"""After the switch closes: its operate time plus one sensor conversion before the check reads."""

NO_VOLTAGE_V = 1.0
"""Below this the port reads as dead: a switch, cable or sensor fault, not a pack."""


async def verify_at_rest(port: PortController, closed_at: float) -> Trip | None:
    """None when the pack at the port is the one declared; otherwise the trip to make."""
    battery = port.battery
    assert battery is not None
    clock = port.clock
    deadline = closed_at + T_VERIFY
    settle = closed_at + VERIFY_SETTLE_S
    dead = False
    while clock.monotonic() < deadline:
        if port.state != PortState.STARTING:
            return None  # tripped or stopped meanwhile: the caller sees the state
        reading = port.reading
        stale = reading is None or reading.timestamp < settle
        if stale and port.direct_reads and clock.monotonic() >= settle:
            # Do not wait for the next supervisor pass: read the port's sensor now.
            with contextlib.suppress(SensorError):
                reading = await port.io.monitor.read()
        if reading is not None and reading.timestamp >= settle:
            tel = port.telemetry
            # Only a pack at rest is comparable: a reading taken under load sits higher.
            at_rest = tel is not None and abs(tel.current_a) <= I_BREAK_A
            declared = tel.voltage_v if tel is not None and at_rest else battery.v_nom_v
            measured = reading.bus_voltage_v
            if measured < NO_VOLTAGE_V:
                # Contacts bounce and a conversion may straddle the close: only a port still
                # dead at the deadline is a fault.
                dead = True
                await clock.sleep(0.01)
                continue
            window_ok = battery.v_min_v * 0.97 <= measured <= battery.v_max_v * 1.01
            if window_ok and voltage_matches(port.safety, measured, declared):
                return None
            return Trip(
                "mismatch",
                f"Measured {measured:.1f} V at the port but the vehicle declared "
                f"{declared:.1f} V: this battery is not what it says",
            )
        await clock.sleep(0.01)
    if dead:
        return Trip(
            "sensor",
            "No voltage at the port after the switch closed: "
            "the switch, the cable or the sensor is faulty",
        )
    return Trip("sensor", "No measurement after the switch closed")
