"""The RD60xx driver (pymodbus's client) against the simulated module (pymodbus's own server)
over a real pty, in virtual time: only the pty round trips take real time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from hal.clock import SimClock
from hal.errors import StageError, StageMismatch, StageTimeout
from hal.interfaces import StageMode, StageProtection
from hal.riden import (
    RD6006,
    RD6006P,
    RD6012,
    RD6018,
    RD6024,
    REG_I_SET,
    RidenModel,
    RidenStage,
    model_for,
)
from hal.sim.pack import SimplePack
from hal.sim.riden import SimRiden
from hal.stages import apply_output, apply_setpoints, verify


@dataclass
class Rig:
    clock: SimClock
    sim: SimRiden
    stage: RidenStage
    pack: SimplePack


def ebike_pack(soc: float = 0.5) -> SimplePack:
    """A 10S pack (30-42 V), small enough to charge through in seconds of virtual time."""
    return SimplePack(empty_v=30.0, full_v=42.0, capacity_ah=0.01, resistance_ohm=0.2, soc=soc)


async def make_rig(model: RidenModel = RD6006, pack: SimplePack | None = None) -> Rig:
    clock = SimClock()
    pack = pack or ebike_pack()
    sim = SimRiden(clock, model, load=pack)
    await sim.start()
    stage = RidenStage(sim.path, clock, timeout_s=0.5)
    await stage.open()
    return Rig(clock, sim, stage, pack)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = await make_rig()
    yield r
    await r.stage.close()
    await r.sim.aclose()


async def test_the_driver_identifies_the_module_and_its_resolution(rig: Rig) -> None:
    assert rig.stage.model is RD6006
    limits = rig.stage.limits
    assert (limits.max_voltage_v, limits.max_current_a) == (60.0, 6.0)
    assert limits.voltage_step_v == pytest.approx(0.01)
    assert limits.current_step_a == pytest.approx(0.001)
    assert rig.stage.describe()["part"] == "RD6006"


@pytest.mark.parametrize("model", [RD6006, RD6006P, RD6012, RD6018, RD6024])
async def test_set_points_read_back_in_each_models_scale(model: RidenModel) -> None:
    r = await make_rig(model)
    try:
        assert r.stage.model is model
        status = await apply_setpoints(r.stage, 41.996, 1.2345)
        assert status.voltage_set_v == pytest.approx(41.996, abs=model.limits.voltage_step_v / 2)
        assert status.current_set_a == pytest.approx(1.2345, abs=model.limits.current_step_a / 2)
        assert not status.output_on
        assert r.sim.model.voltage_set_v == status.voltage_set_v
    finally:
        await r.stage.close()
        await r.sim.aclose()


async def test_constant_current_then_constant_voltage_into_the_pack(rig: Rig) -> None:
    await apply_setpoints(rig.stage, 42.0, 2.0)
    await apply_output(rig.stage, True)
    await rig.clock.advance(1.0)
    cc = await rig.stage.read()
    assert cc.mode is StageMode.CONSTANT_CURRENT
    assert cc.output_current_a == pytest.approx(2.0, abs=0.002)
    assert cc.output_voltage_v < 42.0 - 0.5
    # OCV climbs with charge; at OCV + I·R = 42 V the regulator crosses over (about 8.4 s).
    await rig.clock.advance(9.0)
    cv = await rig.stage.read()
    assert cv.mode is StageMode.CONSTANT_VOLTAGE
    assert cv.output_voltage_v == pytest.approx(42.0, abs=0.02)
    assert cv.output_current_a < 2.0
    await rig.clock.advance(10.0)
    later = await rig.stage.read()
    assert later.mode is StageMode.CONSTANT_VOLTAGE
    assert later.output_current_a < cv.output_current_a  # the taper
    assert later.output_voltage_v == pytest.approx(42.0, abs=0.02)


async def test_the_limits_slew_rather_than_jump(rig: Rig) -> None:
    await apply_setpoints(rig.stage, 42.0, 5.0)
    await apply_output(rig.stage, True)
    await rig.clock.advance(0.1)
    # The voltage limit is still climbing (200 V/s) below the pack's 36 V: nothing flows yet.
    assert (await rig.stage.read()).output_current_a == 0.0
    assert rig.sim.model.voltage_limit_v == pytest.approx(20.0)
    await rig.clock.advance(0.2)
    assert (await rig.stage.read()).output_current_a == pytest.approx(5.0, abs=0.002)
    await apply_setpoints(rig.stage, current_a=1.0)  # a lowered grant: down within 0.1 s
    await rig.clock.advance(0.1)
    assert (await rig.stage.read()).output_current_a == pytest.approx(1.0, abs=0.002)


async def test_over_current_protection_trips_the_output_off(rig: Rig) -> None:
    await rig.stage.set_protection(45.0, 1.5)
    assert await rig.stage.read_protection() == (45.0, 1.5)
    await apply_setpoints(rig.stage, 42.0, 2.0)
    await apply_output(rig.stage, True)
    await rig.clock.advance(0.2)
    status = await rig.stage.read()
    assert status.tripped
    assert status.protection is StageProtection.OVER_CURRENT
    assert not status.output_on
    await rig.clock.advance(0.1)
    assert (await rig.stage.read()).output_current_a == 0.0
    # Switching on again clears the flag, and the same fault trips it again.
    await apply_output(rig.stage, True)
    await rig.clock.advance(0.2)
    assert (await rig.stage.read()).protection is StageProtection.OVER_CURRENT
    assert len(rig.sim.model.trips) == 2


async def test_over_voltage_protection_trips_on_a_pack_above_the_limit() -> None:
    high = SimplePack(empty_v=45.0, full_v=63.0, capacity_ah=1.0, resistance_ohm=0.2, soc=1.0)
    r = await make_rig(pack=high)  # a 63 V pack on a stage set for a 42 V one
    try:
        await r.stage.set_protection(44.0, 6.2)
        await apply_setpoints(r.stage, 42.0, 1.0)
        await apply_output(r.stage, True)
        await r.clock.advance(0.05)
        status = await r.stage.read()
        assert status.protection is StageProtection.OVER_VOLTAGE
        assert not status.output_on
        # Switched on again, it trips again at once: the port stays off.
        await r.stage.set_output(True)
        await r.clock.advance(0.05)
        with pytest.raises(StageMismatch, match="output off, set on"):
            verify(await r.stage.read(), r.stage.limits, output_on=True)
    finally:
        await r.stage.close()
        await r.sim.aclose()


async def test_a_stage_that_stops_answering_misses_its_deadline(rig: Rig) -> None:
    await apply_setpoints(rig.stage, 42.0, 2.0)
    rig.sim.stop_answering()
    pending = asyncio.ensure_future(rig.stage.read())
    await rig.clock.advance(0.4)
    assert not pending.done()
    await rig.clock.advance(0.2)
    with pytest.raises(StageTimeout, match=r"no answer to reading registers 8-18 within 0\.5 s"):
        await pending
    # A write is bounded too, and a timeout is a StageError and a TimeoutError alike.
    pending = asyncio.ensure_future(rig.stage.set_output(True))
    await rig.clock.advance(0.6)
    with pytest.raises(TimeoutError):
        await pending
    assert not rig.sim.model.output_on
    rig.sim.resume_answering()
    # Modbus RTU has no transaction id: a reply to the timed-out request that arrives late can be
    # taken for the next one's. That is refused as an error (the station faults the port on it),
    # and the exchange after it is clean.
    with contextlib.suppress(StageError):
        assert (await rig.stage.read()).current_set_a == 2.0
    assert (await rig.stage.read()).current_set_a == 2.0


async def test_a_write_acknowledged_but_not_applied_is_a_mismatch(rig: Rig) -> None:
    await apply_setpoints(rig.stage, 42.0, 2.0)
    rig.sim.model.dropped_writes.add(REG_I_SET)
    with pytest.raises(StageMismatch, match="current limit 2 A, set 3 A"):
        await apply_setpoints(rig.stage, current_a=3.0)


async def test_a_set_point_changed_at_the_panel_is_caught_on_the_next_check(rig: Rig) -> None:
    await apply_setpoints(rig.stage, 42.0, 2.0)
    rig.sim.model.panel_set(voltage_v=48.0)
    with pytest.raises(StageMismatch, match="voltage limit 48 V, set 42 V"):
        verify(await rig.stage.read(), rig.stage.limits, voltage_v=42.0, current_a=2.0)


async def test_set_points_beyond_the_part_or_the_port_are_refused_before_sending() -> None:
    clock = SimClock()
    sim = SimRiden(clock, RD6006)
    await sim.start()
    stage = RidenStage(sim.path, clock, voltage_cap_v=42.0)
    await stage.open()
    try:
        before = sim.model.requests
        with pytest.raises(StageError, match="outside the stage's 0-42 V"):
            await stage.set_voltage(42.5)
        with pytest.raises(StageError, match="outside the stage's 0-6 A"):
            await stage.set_current(6.5)
        assert sim.model.requests == before
        assert stage.limits.max_voltage_v == 42.0
    finally:
        await stage.close()
        await sim.aclose()


def test_model_ids_name_the_scale() -> None:
    assert model_for(60062) is RD6006
    assert model_for(60065) is RD6006P
    assert model_for(60121) is RD6012
    assert model_for(60181) is RD6018
    assert model_for(60241) is RD6024
    with pytest.raises(StageError, match="RD6012P"):
        model_for(60125)
    with pytest.raises(StageError, match="not an RD60xx"):
        model_for(5005)


async def test_a_missing_serial_port_is_a_clear_error() -> None:
    stage = RidenStage("/dev/does-not-exist", SimClock(), timeout_s=0.2)
    with pytest.raises(StageError, match="cannot open"):
        await stage.open()
