"""A port's states and the moves between them, written once as data.

Every change of a port's state goes through :func:`next_state`, which refuses a move the table does
not list (and says which), so a new state or event is one edit here and the diagram in
docs/architecture.md is generated from the same table (:func:`mermaid`).

What a move does not do is touch the switch: opening is always allowed and happens before a move
into FAULT; closing happens in one place only (``PortController.admit``), inside STARTING.
"""

from __future__ import annotations

from enum import StrEnum


class PortState(StrEnum):
    EMPTY = "empty"
    CONNECTED = "connected"
    UNSUPPORTED = "unsupported"
    READY = "ready"
    AUTHORIZING = "authorizing"
    PAYMENT = "payment"
    WAITING = "waiting"
    STARTING = "starting"
    CHARGING = "charging"
    STOPPING = "stopping"
    DONE = "done"
    FAULT = "fault"


class PortEvent(StrEnum):
    SEEN = "seen"
    """Something talks on an empty port (a heartbeat or telemetry before HELLO)."""
    IDENTIFIED = "identified"
    """HELLO accepted."""
    BATTERY_OK = "battery_ok"
    """BATT accepted: the station knows the pack and can charge it here."""
    BATTERY_REFUSED = "battery_refused"
    """BATT refused for this port (its voltage window): the vehicle cannot charge here."""
    REQUESTED = "requested"
    """REQ accepted; after a finished session it makes the port ready again."""
    START = "start"
    """A rider's or operator's start, no payment needed."""
    START_UNPAID = "start_unpaid"
    """A start that waits for the rider's payment first."""
    AUTHORIZE = "authorize"
    """A start whose idTag the central system must accept first (the switch stays open)."""
    AUTHORIZED = "authorized"
    """The idTag was accepted: on to payment or to waiting for power."""
    PAID = "paid"
    ADMIT = "admit"
    """The allocator grants power: GRANT sent, the switch may close inside STARTING."""
    POWERED = "powered"
    """The vehicle accepted POWER after the at-rest check."""
    PAUSE = "pause"
    """Rotated out or budget gone: switch opened, session kept waiting."""
    STOP = "stop"
    """A normal stop began: the vehicle ramps down before the switch opens."""
    FINISH = "finish"
    """A session ended normally (its record and SUM follow)."""
    TRIP = "trip"
    """A fault: the switch is already open when this move is made."""
    RESET = "reset"
    """An operator's reset, or a new vehicle identifying on a port whose faulted one left."""
    RESTARTED = "restarted"
    """The vehicle's BOOT outside a live session: it starts its handshake again."""
    GONE = "gone"
    """The vehicle left (unplugged or silent for T_LINK): the port is free."""
    WAIT = "wait"
    """The waiting session's reason changed (heat, budget): same state, new words."""


S = PortState
E = PortEvent

LIVE_STATES = frozenset({S.STARTING, S.CHARGING, S.STOPPING})
"""The switch may be closed only in these states."""
SESSION_STATES = LIVE_STATES | {S.AUTHORIZING, S.PAYMENT, S.WAITING}
"""A session exists in these states."""
POWERLESS = (S.AUTHORIZING, S.PAYMENT, S.WAITING)
"""A session exists and its switch has never closed, or is open while it waits."""
IDLE_STATES = frozenset({S.EMPTY, S.CONNECTED, S.UNSUPPORTED, S.READY, S.DONE})
"""No session and no fault."""

_KNOWN = frozenset({S.CONNECTED, S.UNSUPPORTED, S.READY, S.DONE})
"""A vehicle has identified and no session runs."""

TRANSITIONS: dict[tuple[PortState, PortEvent], frozenset[PortState]] = {
    **{(s, E.TRIP): frozenset({S.FAULT}) for s in PortState},
    **{(s, E.GONE): frozenset({S.EMPTY}) for s in IDLE_STATES | {S.FAULT}},
    (S.EMPTY, E.SEEN): frozenset({S.CONNECTED}),
    **{(s, E.IDENTIFIED): frozenset({S.CONNECTED}) for s in _KNOWN | {S.EMPTY}},
    (S.FAULT, E.IDENTIFIED): frozenset({S.FAULT}),
    **{(s, E.BATTERY_OK): frozenset({S.READY}) for s in _KNOWN},
    **{(s, E.BATTERY_OK): frozenset({s}) for s in SESSION_STATES | {S.FAULT}},
    **{(s, E.BATTERY_REFUSED): frozenset({S.UNSUPPORTED}) for s in _KNOWN},
    (S.FAULT, E.BATTERY_REFUSED): frozenset({S.FAULT}),
    (S.DONE, E.REQUESTED): frozenset({S.READY}),
    **{
        (s, E.REQUESTED): frozenset({s})
        for s in SESSION_STATES | {S.CONNECTED, S.READY, S.UNSUPPORTED, S.FAULT}
    },
    (S.READY, E.START): frozenset({S.WAITING}),
    (S.READY, E.START_UNPAID): frozenset({S.PAYMENT}),
    (S.READY, E.AUTHORIZE): frozenset({S.AUTHORIZING}),
    (S.AUTHORIZING, E.AUTHORIZED): frozenset({S.PAYMENT, S.WAITING}),
    (S.PAYMENT, E.PAID): frozenset({S.WAITING}),
    (S.WAITING, E.ADMIT): frozenset({S.STARTING}),
    (S.STARTING, E.POWERED): frozenset({S.CHARGING}),
    (S.CHARGING, E.PAUSE): frozenset({S.WAITING}),
    (S.WAITING, E.WAIT): frozenset({S.WAITING}),
    (S.STARTING, E.STOP): frozenset({S.STOPPING}),
    (S.CHARGING, E.STOP): frozenset({S.STOPPING}),
    **{(s, E.FINISH): frozenset({S.DONE}) for s in (*POWERLESS, S.STOPPING)},
    (S.FAULT, E.RESET): frozenset({S.EMPTY, S.CONNECTED, S.READY}),
    **{(s, E.RESTARTED): frozenset({S.CONNECTED}) for s in _KNOWN | {S.EMPTY}},
    (S.FAULT, E.RESTARTED): frozenset({S.FAULT}),
}
"""(state, event) -> the states that move may reach; a pair not listed is an illegal move."""


class IllegalTransition(RuntimeError):
    """A move the table does not allow; the port's state is left as it was."""

    def __init__(self, state: PortState, event: PortEvent, target: PortState | None) -> None:
        to = f" to {target.value}" if target is not None else ""
        super().__init__(f"{event.value} is not allowed in {state.value}{to}")
        self.state = state
        self.event = event
        self.target = target


def next_state(state: PortState, event: PortEvent, target: PortState | None = None) -> PortState:
    """The state after ``event``; ``target`` chooses where a move may lead to several."""
    allowed = TRANSITIONS.get((state, event))
    if not allowed:
        raise IllegalTransition(state, event, target)
    if target is None:
        if len(allowed) != 1:
            raise IllegalTransition(state, event, None)
        return next(iter(allowed))
    if target not in allowed:
        raise IllegalTransition(state, event, target)
    return target


def mermaid() -> str:
    """The table as a mermaid state diagram (docs/architecture.md holds this text)."""
    lines = ["stateDiagram-v2", "    [*] --> empty"]
    edges: dict[tuple[str, str], list[str]] = {}
    for (state, event), targets in TRANSITIONS.items():
        if event is E.TRIP and state is not S.FAULT:
            continue  # drawn once as "any --> fault" below: every state may trip
        for target in sorted(targets):
            if target == state:
                continue  # self-moves (new words, a refreshed profile) clutter the picture
            edges.setdefault((state.value, target.value), []).append(event.value)
    for (src, dst), events in sorted(edges.items()):
        lines.append(f"    {src} --> {dst}: {', '.join(sorted(events))}")
    lines.append("    note left of fault: every state moves here on trip")
    return "\n".join(lines) + "\n"
