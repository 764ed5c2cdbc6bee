"""Every PEV Link timer, in seconds, in one place (the spec's timer table is generated from it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Timer:
    name: str
    seconds: float
    who: str
    meaning: str
    on_expiry: str


T_REPLY = 0.5
N_RETRIES = 2
T_HB_PERIOD = 1.0
T_LINK = 3.0
T_IDENT = 5.0
T_TEL_PERIOD = 1.0
T_TEL = 3.0
T_SETTLE = 0.5
T_VERIFY = 0.5
T_RAMP = 1.0
T_RAMP_MAX = 2.0
I_BREAK_A = 0.2
"""A normal stop opens the power switch once the measured current is at or below this."""

TIMERS: tuple[Timer, ...] = (
    Timer(
        "T_REPLY",
        T_REPLY,
        "requester",
        "a request must be answered (reply or NAK) within it",
        f"send the same line again (same sequence number), at most {N_RETRIES} times; then the "
        "link is lost",
    ),
    Timer(
        "T_HB_PERIOD",
        T_HB_PERIOD,
        "both",
        "a side that has sent nothing for this long sends HB",
        "send HB",
    ),
    Timer(
        "T_LINK",
        T_LINK,
        "both",
        "longest silence from the peer (no valid line at all)",
        "link lost: the station opens the power switch and ends the session as 'silent'",
    ),
    Timer(
        "T_IDENT",
        T_IDENT,
        "station",
        "from the first byte after plug-in to a valid HELLO",
        "the station shows 'vehicle not recognised' and keeps the power switch open",
    ),
    Timer(
        "T_TEL_PERIOD",
        T_TEL_PERIOD,
        "vehicle",
        "telemetry interval from HELLO to unplug",
        "send TEL",
    ),
    Timer(
        "T_TEL",
        T_TEL,
        "station",
        "longest gap between two TEL notices while a session is live",
        "fault 'silent': open the power switch at once",
    ),
    Timer(
        "T_SETTLE",
        T_SETTLE,
        "vehicle",
        "after a GRANT that lowers the current, time to settle at or below it",
        "the station treats a current above grant + tolerance as over-current",
    ),
    Timer(
        "T_VERIFY",
        T_VERIFY,
        "station",
        "after closing the switch, the measured port voltage must match the declared pack voltage",
        "fault 'mismatch': open at once",
    ),
    Timer(
        "T_RAMP",
        T_RAMP,
        "vehicle",
        "after STOP, time to ramp the current down to I_BREAK",
        "the station keeps waiting up to T_RAMP_MAX",
    ),
    Timer(
        "T_RAMP_MAX",
        T_RAMP_MAX,
        "station",
        "longest wait for the ramp-down before opening",
        "open the power switch under load and record it",
    ),
)
