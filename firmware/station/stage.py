"""What the station does with a port's programmable CC/CV stage, and how it watches it.

With a stage the station, not the vehicle, enforces the grant: a bare pack behind its BMS draws
whatever the stage allows. So the stage is set (voltage limit = the vehicle's vmax, never above
the port's limit; current limit = the grant) and read back before the switch closes; its output
goes on only once the pack at rest has been verified; each grant moves it; a normal stop brings its
current to zero before the switch opens; a trip opens the switch first and switches the stage off
afterwards, under a short deadline, since a stage that failed may not answer at all.

While power flows, :func:`watch` reads the stage every :data:`WATCH_PERIOD_S` in a task of its own
(a Modbus round trip never delays the safety loop's pass and its watchdog kick) and trips the port
(code ``stage``) when the stage fails to answer, tripped its own protection, holds other set
points than the station gave it, or measures something else than the port's sensor for
:data:`DISAGREE_READS` reads in a row.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from firmware.station.safety import Trip
from firmware.station.states import PortState
from hal.clock import wait_for
from hal.errors import HalError, StageError
from hal.interfaces import PowerReading, PowerStage, StageLimits, StageStatus
from hal.stages import apply_output, apply_setpoints, verify

if TYPE_CHECKING:
    from firmware.station.port import PortController

log = logging.getLogger(__name__)

STAGE_OFF_DEADLINE_S = 1.0
"""After a trip, how long switching the stage off may take; the switch is already open."""
WATCH_PERIOD_S = 0.25
DISAGREE_READS = 3
"""Consecutive disagreeing reads before a trip: the stage and the sensor are read a few
milliseconds apart, and during a slew they may differ for one read."""
VOLTAGE_TOLERANCE_V = 0.5
VOLTAGE_TOLERANCE_FRAC = 0.02
CURRENT_TOLERANCE_A = 0.3
CURRENT_TOLERANCE_FRAC = 0.1


def stage_trip(exc: Exception) -> Trip:
    return Trip("stage", f"The port's power stage failed: {exc}"[:120])


def stage_voltage(port: PortController) -> float:
    """The stage's voltage limit: the vehicle's vmax, never above the port's limit."""
    assert port.battery is not None
    return min(port.battery.v_max_v, port.spec.v_max_v)


async def prepare(stage: PowerStage, voltage_v: float, current_a: float) -> None:
    """Before the switch closes: open the part, set and verify both limits, output still off."""
    await stage.open()
    status = await apply_setpoints(stage, voltage_v, current_a)
    if status.output_on:
        await apply_output(stage, False)


async def output_on(stage: PowerStage) -> None:
    status = await apply_output(stage, True)
    if status.tripped:
        raise StageError(f"the stage's protection is tripped: {status.protection!r}")


async def set_current(stage: PowerStage, current_a: float) -> None:
    await apply_setpoints(stage, current_a=current_a)


async def switch_off(port: PortController) -> None:
    """Output off under a short deadline; a stage that does not answer is logged, not awaited."""
    stage = port.io.stage
    if stage is None:
        return
    try:
        await wait_for(port.clock, apply_output(stage, False), STAGE_OFF_DEADLINE_S)
    except (HalError, TimeoutError) as exc:
        log.warning("port %d: the stage did not switch off: %s", port.port_id, exc)


def disagreement(status: StageStatus, reading: PowerReading) -> str | None:
    """Words for a stage and a sensor that measure different things at the same node."""
    volts, amps = reading.bus_voltage_v, reading.current_a
    v_tol = VOLTAGE_TOLERANCE_V + VOLTAGE_TOLERANCE_FRAC * abs(volts)
    i_tol = CURRENT_TOLERANCE_A + CURRENT_TOLERANCE_FRAC * abs(amps)
    if abs(status.output_voltage_v - volts) > v_tol:
        return (
            f"The power stage measures {status.output_voltage_v:.1f} V, "
            f"the port's sensor {volts:.1f} V"
        )
    if abs(status.output_current_a - amps) > i_tol:
        return (
            f"The power stage measures {status.output_current_a:.2f} A, "
            f"the port's sensor {amps:.2f} A"
        )
    return None


def check(port: PortController, status: StageStatus) -> Trip | None:
    """One read of a live stage against what the station set and what the sensor measures."""
    if status.tripped:
        return Trip("stage", f"The power stage's own protection tripped: {status.protection!r}")
    if not port.busy:  # a grant change in progress moves the set points
        try:
            verify(
                status,
                stage_limits(port),
                voltage_v=stage_voltage(port),
                current_a=port.grant_a,
                output_on=True,
            )
        except StageError as exc:
            return stage_trip(exc)
    reading = port.reading
    words = disagreement(status, reading) if reading is not None else None
    port.stage_disagreements = port.stage_disagreements + 1 if words else 0
    if words and port.stage_disagreements >= DISAGREE_READS:
        return Trip("stage", words)
    return None


def stage_limits(port: PortController) -> StageLimits:
    assert port.io.stage is not None
    return port.io.stage.limits


async def watch(port: PortController, session: object) -> None:
    """Read the stage while this session has power; trip the port on the first fault."""
    stage = port.io.stage
    assert stage is not None
    port.stage_disagreements = 0

    def live() -> bool:
        return (
            port.session is session
            and port.state in (PortState.CHARGING, PortState.STOPPING)
            and port.relay_closed
        )

    while live():
        await port.clock.sleep(WATCH_PERIOD_S)
        if not live() or port.state != PortState.CHARGING:
            continue
        try:
            status = await stage.read()
        except StageError as exc:
            if live():
                port.trip(stage_trip(exc))
            return
        previous, port.stage_status = port.stage_status, status
        if previous is not None and status.timestamp == previous.timestamp:
            continue  # the same status frame again (a CAN charger reports once a second)
        if not live() or port.state != PortState.CHARGING:
            continue
        trip = check(port, status)
        if trip is not None:
            port.trip(trip)
            return
