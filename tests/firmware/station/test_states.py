"""The port's transition table, exhaustively: every state x event, without ptys, in virtual time."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from firmware.pevlink.timers import T_REPLY
from firmware.station.port import PortController, PortSpec
from firmware.station.safety import SafetyConfig
from firmware.station.states import (
    LIVE_STATES,
    TRANSITIONS,
    IllegalTransition,
    PortEvent,
    PortState,
    mermaid,
    next_state,
)
from hal.clock import SimClock
from hal.sim.memory_cable import memory_cable
from hal.sim.relay import SimRelay

ROOT = Path(__file__).resolve().parents[3]


class _Io:
    """A port's hardware without ptys: an in-memory cable and a simulated switch."""

    def __init__(self, clock: SimClock) -> None:
        self.relay = SimRelay(clock, name="test")
        self.link, self.peer = memory_cable(clock, baud=None)
        self.monitor = None
        self.detect = None


def _port(clock: SimClock) -> tuple[PortController, _Io]:
    io = _Io(clock)
    spec = PortSpec(1, 5.0, 12.0, 60.0, 300.0)
    port = PortController(
        spec, io, clock, SafetyConfig(), station_name="test", on_change=lambda _p: None
    )
    return port, io


@pytest.mark.parametrize("state", list(PortState))
@pytest.mark.parametrize("event", list(PortEvent))
async def test_every_state_and_event(state: PortState, event: PortEvent) -> None:
    clock = SimClock()
    port, io = _port(clock)
    port.state = state  # the starting point under test, set directly
    if state in LIVE_STATES:
        await io.relay.close()
    before = io.relay.is_closed
    allowed = TRANSITIONS.get((state, event), frozenset())
    targets = sorted(allowed) or [None]
    for target in targets:
        port.state = state
        if allowed:
            port.move(event, to=target if len(allowed) > 1 else None)
            assert port.state in allowed
        else:
            with pytest.raises(IllegalTransition, match=f"{event.value} is not allowed"):
                port.move(event)
            assert port.state == state
        assert io.relay.is_closed == before  # a move never touches the switch
    await clock.advance(T_REPLY)
    await port.aclose()


def test_a_move_to_several_states_needs_its_target_named() -> None:
    with pytest.raises(IllegalTransition):
        next_state(PortState.FAULT, PortEvent.RESET)
    assert next_state(PortState.FAULT, PortEvent.RESET, PortState.READY) == PortState.READY
    with pytest.raises(IllegalTransition, match="to charging"):
        next_state(PortState.FAULT, PortEvent.RESET, PortState.CHARGING)


def test_the_switch_may_be_closed_only_where_the_table_leads_through_admission() -> None:
    """The only way into STARTING (where the switch closes) is ADMIT from WAITING."""
    into_live = {
        (state, event)
        for (state, event), targets in TRANSITIONS.items()
        if targets & LIVE_STATES and state not in LIVE_STATES
    }
    assert into_live == {(PortState.WAITING, PortEvent.ADMIT)}


def test_every_state_can_trip_and_every_state_is_reachable() -> None:
    assert all((s, PortEvent.TRIP) in TRANSITIONS for s in PortState)
    reached = {PortState.EMPTY}
    frontier = [PortState.EMPTY]
    while frontier:
        state = frontier.pop()
        for (src, _), targets in TRANSITIONS.items():
            if src == state:
                for target in targets - reached:
                    reached.add(target)
                    frontier.append(target)
    assert reached == set(PortState)


def test_the_architecture_document_shows_the_table() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    found = re.search(r"```mermaid\n(stateDiagram-v2\n.*?)```", text, re.S)
    assert found is not None, "docs/architecture.md has no port state diagram"
    assert found.group(1) == mermaid(), (
        "docs/architecture.md shows an old diagram: paste firmware.station.states.mermaid()"
    )
