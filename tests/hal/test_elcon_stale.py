"""A status frame is as old as its arrival, not as the read that took it off the bus: a charger
that fell silent while its stage was idle (no session, so nobody read the bus) must not be reported
alive by the first read after, from the last frame it sent minutes ago."""

from __future__ import annotations

import pytest

from hal.errors import StageTimeout
from tests.hal.test_elcon import Rig, rig, settle

__all__ = ["rig"]


async def test_a_charger_that_fell_silent_while_idle_is_not_read_as_alive(rig: Rig) -> None:
    await rig.clock.advance(5.0)
    rig.charger.over_temperature = True
    await rig.clock.advance(2.0)  # one status frame with the flag set is queued
    rig.charger.silent = True  # then the charger dies; nobody reads the bus for ten minutes
    await rig.clock.advance(600.0)
    with pytest.raises(StageTimeout):
        status = await settle(rig.clock, rig.stage.read())
        pytest.fail(f"a ten-minute-old frame read as the charger's status now: {status}")
