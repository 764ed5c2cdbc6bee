"""Every MUST of PEV Link 1.2, per role, with its stable id (docs/pev-link.md, section 10).

The list in the specification is generated from this table (``python -m
host.conformance.requirements``) and a test keeps the two equal, so a requirement id in a
conformance report always means the sentence the specification gives it. ``kit`` says whether
``pev-conformance`` can check the requirement over the serial line alone.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

DOCUMENT = "PEV Link 1.2"
"""The specification the requirements are taken from (docs/pev-link.md, document version)."""


@dataclass(frozen=True, slots=True)
class Requirement:
    id: str
    section: str
    text: str
    kit: bool = True
    """False: a physical or electrical MUST that a serial line cannot show."""

    @property
    def role(self) -> str:
        return "station" if self.id.startswith("ST-") else "vehicle"


def _r(rid: str, section: str, text: str, kit: bool = True) -> Requirement:
    return Requirement(rid, section, text, kit)


STATION: tuple[Requirement, ...] = (
    _r(
        "ST-PHY-01",
        "1.1",
        "Keeps PWR+ dead (switch open) while no session has completed the negotiation of §3.",
        False,
    ),
    _r("ST-PHY-02", "1.1", "If it wires DET, opens the power switch when DET goes high.", False),
    _r(
        "ST-PHY-03",
        "1.2",
        "Speaks 115200 baud 8N1 unless both sides are configured otherwise, and pulls its receive line up.",
        False,
    ),
    _r(
        "ST-PHY-04",
        "1.3",
        "Isolates each port's S2V, V2S and DET from its logic ground and from every other port; separates its DC supply from the mains.",
        False,
    ),
    _r(
        "ST-PHY-05",
        "1.4",
        "Between closing the switch and POWER on=1, does not drive the port from its own source.",
        False,
    ),
    _r(
        "ST-LINK-01",
        "2.1",
        "Every line it sends is well formed: `$` … CR LF, printable ASCII, at most MAX_LINE_BYTES, CRC-16/CCITT-FALSE in upper-case hex, a message of its role with valid fields.",
        True,
    ),
    _r(
        "ST-LINK-02",
        "2.1",
        "Accepts a bare LF terminator, lower-case hexadecimal digits and fields in any order.",
        True,
    ),
    _r(
        "ST-LINK-03",
        "2.1",
        "Drops a line longer than MAX_LINE_BYTES (E102) without answering it.",
        True,
    ),
    _r(
        "ST-LINK-04",
        "2.3",
        "Answers every request with exactly one reply (the reply of the same name or NAK) carrying the request's sequence number.",
        True,
    ),
    _r(
        "ST-LINK-05",
        "2.3",
        "Never numbers a request 00, and gives each new request a number different from its previous request.",
        True,
    ),
    _r("ST-LINK-06", "2.3", "Has at most one request outstanding at a time.", True),
    _r(
        "ST-LINK-07",
        "2.3",
        "Keeps answering the vehicle's requests while it waits for its own reply.",
        True,
    ),
    _r(
        "ST-LINK-08",
        "2.4",
        "Never answers a line with a link error (E1xx), such as a wrong checksum.",
        True,
    ),
    _r(
        "ST-LINK-09",
        "2.4",
        "Refuses a request with an application error (E2xx) with NAK, its code, the field and, where it can, accept.",
        True,
    ),
    _r(
        "ST-LINK-10",
        "2.6",
        "Sends an unanswered request again, byte for byte, after T_REPLY, at most N_RETRIES times.",
        True,
    ),
    _r(
        "ST-LINK-11",
        "2.6",
        "Answers a retransmitted request with the reply it gave, without acting on it again.",
        True,
    ),
    _r("ST-LINK-12", "2.7", "Sends HB when it has sent nothing for T_HB_PERIOD.", True),
    _r(
        "ST-LINK-13",
        "2.7",
        "After T_LINK without a valid line, opens the switch (fault `silent`) if it is closed, ends the session and forgets the vehicle.",
        True,
    ),
    _r("ST-LINK-14", "2.8", "Drops noise and half lines and understands the next good line.", True),
    _r("ST-LINK-15", "2.9", "Refuses a value with a bad `%` escape with E203.", True),
    _r("ST-LINK-16", "2.3", "Answers a request numbered 00 like any other, echoing 00.", True),
    _r("ST-BOOT-01", "2.10", "Sends BOOT as the first line whenever its link starts.", False),
    _r(
        "ST-BOOT-02",
        "2.10",
        "On the vehicle's BOOT, forgets all link and session state about it (BATT is then E208 until a new HELLO).",
        True,
    ),
    _r(
        "ST-BOOT-03",
        "2.10",
        "On the vehicle's BOOT or HELLO during a live session, opens the switch at once (fault `link`), then sends FAULT, SUM reason=fault and POWER on=0.",
        True,
    ),
    _r(
        "ST-APP-01",
        "3.1",
        "Refuses with NAK E208 a request it does not take in its role or state (GRANT, BATT before HELLO, REQ before BATT).",
        True,
    ),
    _r(
        "ST-APP-02",
        "3.3",
        "Answers HELLO with the highest version in common, its name and port, or NAK E207 field=ver accept=<its versions>.",
        True,
    ),
    _r("ST-APP-03", "3.3", "Bases no safety decision on type, maker, model, serial or fw.", False),
    _r(
        "ST-APP-04",
        "3.4",
        "Refuses a pack above (below) its port's voltage range with NAK E210 field=vmax (vmin) accept=<limit>, and never closes the switch for it.",
        True,
    ),
    _r("ST-APP-05", "3.4", "Refuses a BATT that breaks a cross-field rule with NAK E206.", True),
    _r(
        "ST-APP-06",
        "3.5",
        "Refuses REQ v above BATT vmax with NAK E206 field=v accept=<vmax>.",
        True,
    ),
    _r(
        "ST-APP-07",
        "3.5",
        "Never grants more than BATT imax, REQ i, the port's imax or pmax / BATT vmax, and never a voltage limit above BATT vmax.",
        True,
    ),
    _r(
        "ST-APP-08",
        "3.5",
        "Closes the switch, and sends POWER on=1, only after the vehicle confirmed the GRANT.",
        True,
    ),
    _r(
        "ST-APP-09",
        "3.5",
        "When GRANT or POWER on=1 is refused or unanswered after the retries, opens the switch (fault `link`) and does not power the port.",
        True,
    ),
    _r(
        "ST-APP-10",
        "3.6",
        "At power-on, opens the switch at once (fault `mismatch`) unless the port voltage matches the declared pack within T_VERIFY.",
        True,
    ),
    _r(
        "ST-APP-11",
        "3.7",
        "Lowers the other grants, and waits for them, before raising anyone's.",
        False,
    ),
    _r(
        "ST-APP-12",
        "3.8",
        "Opens the switch (fault `silent`) when a live session has had no TEL for T_TEL.",
        True,
    ),
    _r(
        "ST-APP-13", "3.2", "Does not keep the switch closed while a stop flag is set in TEL.", True
    ),
    _r(
        "ST-APP-14",
        "3.9",
        "Answers STOP with R STOP; after a normal stop sends POWER on=0, then SUM, then STATE done.",
        True,
    ),
    _r("ST-APP-15", "3.9", "Records a vehicle's STOP reason=user as `vehicle`, in SUM too.", True),
    _r("ST-APP-16", "3.9", "Answers STOP with no session with R STOP and changes nothing.", True),
    _r(
        "ST-APP-17",
        "3.10",
        "On a fault: opens the switch first, then sends FAULT sev=stop, SUM reason=fault (if a session was open) and POWER on=0, in that order.",
        True,
    ),
    _r("ST-APP-18", "3.10", "Does not stop the charge for FAULT sev=warn.", True),
    _r(
        "ST-APP-19",
        "3.10",
        "After its FAULT and SUM, sends no GRANT or POWER on=1 (not even a retransmission) until a new session.",
        True,
    ),
    _r("ST-APP-20", "3.12", "Sends SUM once per session, after the switch opened.", True),
    _r(
        "ST-APP-21",
        "6.2",
        "Ignores unknown fields, refuses an unknown request with NAK E200, and a word outside its list with E205.",
        True,
    ),
    _r(
        "ST-APP-22",
        "4.1",
        "Frees a faulted port after T_LINK of silence: the next vehicle is identified as on an empty port.",
        True,
    ),
    _r(
        "ST-SAFE-01",
        "5",
        "Supervises every port by measurement (current, voltage, sensor, budget) and opens the switch when a rule of §5 trips.",
        False,
    ),
)

VEHICLE: tuple[Requirement, ...] = (
    _r(
        "VH-PHY-01",
        "1.1",
        "Ties DET to SGND through 1 kΩ, or presents these six contacts through an adapter.",
        False,
    ),
    _r(
        "VH-PHY-02",
        "1.2",
        "Speaks 115200 baud 8N1 unless both sides are configured otherwise, and pulls its receive line up.",
        False,
    ),
    _r(
        "VH-LINK-01",
        "2.1",
        "Every line it sends is well formed: `$` … CR LF, printable ASCII, at most MAX_LINE_BYTES, CRC-16/CCITT-FALSE in upper-case hex, a message of its role with valid fields.",
        True,
    ),
    _r(
        "VH-LINK-02",
        "2.1",
        "Accepts a bare LF terminator, lower-case hexadecimal digits and fields in any order.",
        True,
    ),
    _r(
        "VH-LINK-03",
        "2.1",
        "Drops a line longer than MAX_LINE_BYTES (E102) without answering it.",
        True,
    ),
    _r(
        "VH-LINK-04",
        "2.3",
        "Answers every request with exactly one reply (the reply of the same name or NAK) carrying the request's sequence number.",
        True,
    ),
    _r(
        "VH-LINK-05",
        "2.3",
        "Never numbers a request 00, and gives each new request a number different from its previous request.",
        True,
    ),
    _r("VH-LINK-06", "2.3", "Has at most one request outstanding at a time.", True),
    _r(
        "VH-LINK-07",
        "2.3",
        "Keeps answering the station's requests while it waits for its own reply.",
        True,
    ),
    _r(
        "VH-LINK-08",
        "2.4",
        "Never answers a line with a link error (E1xx), such as a wrong checksum.",
        True,
    ),
    _r(
        "VH-LINK-09",
        "2.4",
        "Refuses a request with an application error (E2xx) with NAK, its code and the field.",
        True,
    ),
    _r(
        "VH-LINK-10",
        "2.6",
        "Sends an unanswered request again, byte for byte, after T_REPLY, at most N_RETRIES times.",
        True,
    ),
    _r(
        "VH-LINK-11",
        "2.6",
        "Answers a retransmitted request with the reply it gave, without acting on it again.",
        True,
    ),
    _r("VH-LINK-12", "2.7", "Sends HB (or TEL) when it has sent nothing for T_HB_PERIOD.", True),
    _r(
        "VH-LINK-13",
        "2.7",
        "After T_LINK without a valid line, stops drawing current and treats power as off.",
        True,
    ),
    _r("VH-LINK-14", "2.8", "Drops noise and half lines and understands the next good line.", True),
    _r("VH-LINK-15", "2.9", "Refuses a value with a bad `%` escape with E203.", True),
    _r("VH-LINK-16", "2.3", "Answers a request numbered 00 like any other, echoing 00.", True),
    _r(
        "VH-LINK-17",
        "2.6",
        "Does not act on a request of its own left unanswered after the retries as if it had been accepted.",
        False,
    ),
    _r("VH-BOOT-01", "2.10", "Sends BOOT as the first line whenever its link starts.", True),
    _r(
        "VH-BOOT-02",
        "2.10",
        "On the station's BOOT, stops drawing at once, forgets the session and starts over with HELLO.",
        True,
    ),
    _r("VH-APP-01", "3.3", "Sends HELLO as its first request after plug-in or BOOT.", True),
    _r("VH-APP-02", "3.3", "After NAK E207 to HELLO, does not go on with BATT.", True),
    _r("VH-APP-03", "3.8", "Sends TEL at least every T_TEL_PERIOD from HELLO on.", True),
    _r("VH-APP-04", "3.5", "Never asks (REQ v) for a voltage above its BATT vmax.", True),
    _r(
        "VH-APP-05",
        "3.5",
        "Accepts a GRANT at any time after its BATT was accepted, confirming a limit no higher than the grant.",
        True,
    ),
    _r("VH-APP-06", "3.5", "Draws no current before POWER on=1.", True),
    _r("VH-APP-07", "3.11", "Takes no permission to draw from STATE.", True),
    _r(
        "VH-APP-08",
        "5",
        "While powered, keeps its current at or under the applied grant plus the tolerance of §5.",
        True,
    ),
    _r(
        "VH-APP-09",
        "3.7",
        "After a lowering GRANT, is at or under the new limit within T_SETTLE.",
        True,
    ),
    _r(
        "VH-APP-10",
        "3.9",
        "On STOP, answers R STOP and ramps to at most I_BREAK_A within T_RAMP.",
        True,
    ),
    _r(
        "VH-APP-11",
        "4.2",
        "On the station's FAULT sev=stop, or POWER on=0, stops drawing at once.",
        True,
    ),
    _r(
        "VH-APP-12",
        "3.1",
        "Refuses with NAK E208 a request it does not take (HELLO, BATT, REQ).",
        True,
    ),
    _r(
        "VH-APP-13",
        "6.2",
        "Ignores unknown fields and refuses an unknown request with NAK E200.",
        True,
    ),
    _r(
        "VH-APP-14",
        "3.10",
        "On a fault of its own, stops drawing at once and sends FAULT sev=stop.",
        False,
    ),
    _r("VH-SAFE-01", "5", "Keeps its pack at or under BATT vmax.", False),
)

ALL: tuple[Requirement, ...] = STATION + VEHICLE
BY_ID: dict[str, Requirement] = {r.id: r for r in ALL}


def for_role(role: str) -> tuple[Requirement, ...]:
    return STATION if role == "station" else VEHICLE


def markdown() -> str:
    """The requirement lists of the specification, section 10."""
    out: list[str] = []
    for title, table in (("Station", STATION), ("Vehicle", VEHICLE)):
        out.append(f"### {title}\n")
        out.append("| id | § | requirement | kit |")
        out.append("| --- | --- | --- | --- |")
        for r in table:
            out.append(f"| `{r.id}` | {r.section} | {r.text} | {'yes' if r.kit else 'no'} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover - a by-hand generator
    sys.stdout.write(markdown())
