"""The vectors added in 1.1: byte streams, timed transcripts, vehicle-side vectors, the table.

Imported by make_vectors.py (the one generator). Lines are written out by hand in their wire form
and only their checksums computed; the generator stops when the codec disagrees with an expected
stream result, so the file never publishes what the reference does not do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from firmware.pevlink import MAX_LINE_BYTES, LineBuffer, LineError, crc16
from firmware.pevlink.codec import describe_messages


def line(body: str, end: str = "\r\n") -> str:
    return f"${body}*{crc16(body.encode('ascii')):04X}{end}"


# --- the line assembler (§2.8) --------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    name: str
    why: str
    chunks: list[bytes]
    out: list[str | tuple[str]]
    """Expected, in order: a line (text with its terminator) or (error code,)."""
    noise: int = 0


HB = line("N07 HB")
TEL = line("N03 TEL soc=40 v=36.9 i=0 temp=25 flags=0")
REQ = line("Q05 REQ i=1.7 v=42")
LONG = "$N01 STATE state=ready text=" + "x" * (MAX_LINE_BYTES + 20)

STREAMS: list[Stream] = [
    Stream("one-line", "a whole line in one chunk", [HB.encode()], [HB]),
    Stream(
        "noise-before",
        "bytes before any '$' are noise: counted and dropped",
        [b"\x00\xff\x7fabc\r\n" + HB.encode()],
        [HB],
        noise=8,
    ),
    Stream(
        "several-lines-in-one-chunk",
        "three lines in one read come out as three lines, in order",
        [(HB + TEL + REQ).encode()],
        [HB, TEL, REQ],
    ),
    Stream(
        "line-split-across-chunks",
        "a line cut into pieces anywhere is reassembled",
        [TEL.encode()[:5], TEL.encode()[5:17], TEL.encode()[17:-1], TEL.encode()[-1:]],
        [TEL],
    ),
    Stream(
        "byte-by-byte",
        "one byte per read",
        [bytes([b]) for b in REQ.encode()],
        [REQ],
    ),
    Stream(
        "half-line-then-line",
        "a '$' inside a line starts a new one: the half line is E103",
        [b"$Q05 REQ i=1" + HB.encode()],
        [("E103",), HB],
    ),
    Stream(
        "run-past-the-limit",
        "MAX_LINE_BYTES without LF: E102 once, the rest dropped up to the LF, the next line read",
        [LONG.encode(), b"\r\n", HB.encode()],
        [("E102",), HB],
    ),
    Stream(
        "run-past-the-limit-ended-by-start",
        "a '$' also ends the discarding",
        [LONG.encode() + HB.encode()],
        [("E102",), HB],
    ),
    Stream(
        "bare-lf",
        "LF alone ends a line (the CR is optional)",
        [line("N07 HB", "\n").encode()],
        [line("N07 HB", "\n")],
    ),
    Stream(
        "noise-between-lines",
        "noise between two lines is dropped, both lines are read",
        [HB.encode() + b"  zz  " + TEL.encode()],
        [HB, TEL],
        noise=6,
    ),
]


def _assemble(chunks: list[bytes]) -> tuple[list[str | tuple[str]], int]:
    buffer = LineBuffer()
    out: list[str | tuple[str]] = []
    for chunk in chunks:
        for item in buffer.feed(chunk):
            out.append((item.code.wire,) if isinstance(item, LineError) else item.decode("ascii"))
    return out, buffer.noise_bytes


def _stream_entry(stream: Stream) -> dict[str, Any]:
    got, noise = _assemble(stream.chunks)
    if got != stream.out or noise != stream.noise:
        raise SystemExit(f"stream {stream.name}: the codec gives {got} ({noise} noise bytes)")
    return {
        "name": stream.name,
        "why": stream.why,
        "chunks_hex": [c.hex() for c in stream.chunks],
        "out": [{"error": o[0]} if isinstance(o, tuple) else {"line": o} for o in stream.out],
        "noise_bytes": stream.noise,
    }


# --- timed transcripts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Transcript:
    name: str
    about: str
    steps: list[tuple[float, str, str]]
    """(seconds, side, body); a body ending in ' !lost' is a line lost on the way."""
    checks: list[str] = field(default_factory=list)


V_TEL = "TEL soc=40 v=36.9 i=0 temp=25 flags=0"
BATT = (
    "BATT chem=NMC cells=10 vnom=36 vmax=42 vmin=30 cap=500 imax=4 imin=0.5 tmin=0 tmax=40 "
    "soc=40 temp=25"
)
NOT_STARTED = "text=The%20vehicle%20did%20not%20complete%20the%20start"
NO_TEL = "text=The%20vehicle%20stopped%20reporting%20its%20battery"
RESTARTED = "text=The%20vehicle%20restarted%20during%20the%20charge"
V_TEL_ON = "TEL soc=40 v=39.06 i=4 temp=25 flags=1"

TRANSCRIPTS: list[Transcript] = [
    Transcript(
        "grant-unanswered-then-fault",
        "the station's GRANT gets no reply: sent again, byte for byte, after T_REPLY, twice; then "
        "fault 'link' with the switch open: FAULT, SUM, POWER on=0, and no GRANT after the FAULT",
        [
            (0.00, "station", "N10 STATE state=waiting text=Waiting%20for%20power"),
            (0.01, "station", "Q11 GRANT i=4 v=42 why=shared"),
            (0.30, "vehicle", f"N20 {V_TEL}"),
            (0.51, "station", "Q11 GRANT i=4 v=42 why=shared"),
            (1.01, "station", "Q11 GRANT i=4 v=42 why=shared"),
            (1.30, "vehicle", f"N21 {V_TEL}"),
            (
                1.51,
                "station",
                "N12 STATE state=fault " + NOT_STARTED,
            ),
            (
                1.51,
                "station",
                "N13 FAULT code=link sev=stop " + NOT_STARTED,
            ),
            (1.51, "station", "N14 SUM wh=0 secs=0 reason=fault peak=0"),
            (1.51, "station", "Q15 POWER on=0"),
            (1.52, "vehicle", "R15 POWER v=0"),
        ],
        ["retries", "fault-order", "nothing-after-fault"],
    ),
    Transcript(
        "reply-lost-answered-from-cache",
        "the vehicle's REQ is answered but the reply is lost: the vehicle sends the identical line "
        "after T_REPLY and the station sends the same reply again, without acting twice",
        [
            (0.00, "vehicle", "Q05 REQ i=4 v=42"),
            (0.01, "station", "R05 REQ state=wait_start !lost"),
            (0.50, "vehicle", "Q05 REQ i=4 v=42"),
            (0.51, "station", "R05 REQ state=wait_start"),
        ],
        ["retries"],
    ),
    Transcript(
        "telemetry-silence",
        "while charging the vehicle stops sending TEL (its HB goes on): after T_TEL the station "
        "opens the switch, then FAULT silent, SUM reason=fault, POWER on=0",
        [
            (0.00, "vehicle", f"N30 {V_TEL_ON}"),
            (1.00, "vehicle", "N31 HB"),
            (1.50, "station", "N40 HB"),
            (2.00, "vehicle", "N32 HB"),
            (3.00, "vehicle", "N33 HB"),
            (
                3.05,
                "station",
                "N41 STATE state=fault " + NO_TEL,
            ),
            (
                3.05,
                "station",
                "N42 FAULT code=silent sev=stop " + NO_TEL,
            ),
            (3.05, "station", "N43 SUM wh=0.112 secs=3 reason=fault peak=156.2"),
            (3.05, "station", "Q44 POWER on=0"),
            (3.06, "vehicle", "R44 POWER v=0"),
        ],
        ["tel-silence", "fault-order", "nothing-after-fault"],
    ),
    Transcript(
        "vehicle-boot-mid-session",
        "the vehicle restarts while charging: the station opens at once (fault link), sends FAULT, "
        "SUM and POWER on=0; the port stays in fault, but it answers the new HELLO and BATT, and "
        "REQ with wait_start",
        [
            (0.00, "vehicle", f"N30 {V_TEL_ON}"),
            (0.40, "vehicle", "N01 BOOT role=vehicle ver=1"),
            (
                0.40,
                "station",
                "N50 STATE state=fault " + RESTARTED,
            ),
            (
                0.40,
                "station",
                "N51 FAULT code=link sev=stop " + RESTARTED,
            ),
            (0.40, "station", "N52 SUM wh=0.02 secs=0 reason=fault peak=156.2"),
            (0.40, "station", "Q53 POWER on=0"),
            (0.41, "vehicle", "R53 POWER v=0"),
            (0.41, "vehicle", "Q02 HELLO ver=1 type=ebike maker=Acme model=City"),
            (0.41, "station", "R02 HELLO ver=1 station=pev-charger port=1"),
            (0.42, "vehicle", f"N03 {V_TEL}"),
            (
                0.42,
                "vehicle",
                "Q04 " + BATT,
            ),
            (0.42, "station", "R04 BATT vmin=12 vmax=84 imax=5 pmax=420"),
            (0.43, "vehicle", "Q05 REQ i=4 v=42"),
            (0.43, "station", "R05 REQ state=wait_start"),
        ],
        ["fault-order", "nothing-after-fault"],
    ),
    Transcript(
        "pause-and-resume",
        "the vehicles take turns: GRANT i=0 (rotation), the current falls to I_BREAK_A, the switch "
        "opens, POWER on=0; later a new GRANT and POWER on=1, with a new verification between",
        [
            (0.00, "station", "Q20 GRANT i=0 v=42 why=rotation"),
            (0.01, "vehicle", "R20 GRANT i=0"),
            (0.25, "vehicle", "N40 TEL soc=52 v=37.4 i=0.1 temp=26 flags=0"),
            (0.30, "station", "Q21 POWER on=0"),
            (0.31, "vehicle", "R21 POWER v=0"),
            (
                0.31,
                "station",
                "N22 STATE state=waiting text=Waiting%20for%20power:%20taking%20turns",
            ),
            (1.25, "vehicle", "N41 TEL soc=52 v=37.3 i=0 temp=26 flags=0"),
            (30.0, "station", "Q23 GRANT i=4 v=42 why=shared"),
            (30.01, "vehicle", "R23 GRANT i=4"),
            (30.01, "station", "N24 STATE state=granted text=Starting"),
            (30.13, "station", "Q25 POWER on=1"),
            (30.13, "vehicle", "R25 POWER v=37.3"),
            (30.13, "station", "N26 STATE state=charging text=Charging"),
            (31.0, "vehicle", "N42 TEL soc=52 v=39.5 i=4 temp=26 flags=1"),
        ],
        ["pause"],
    ),
    Transcript(
        "station-boot",
        "the station restarts while the vehicle charges: the vehicle stops drawing at once and "
        "starts over (its own BOOT is allowed) with HELLO",
        [
            (0.00, "vehicle", f"N30 {V_TEL_ON}"),
            (0.50, "station", "N01 BOOT role=station ver=1"),
            (0.51, "vehicle", "N31 TEL soc=40 v=36.9 i=0 temp=25 flags=0"),
            (0.51, "vehicle", "N32 BOOT role=vehicle ver=1"),
            (0.51, "vehicle", "Q33 HELLO ver=1 type=ebike maker=Acme model=City"),
            (0.52, "station", "R33 HELLO ver=1 station=pev-charger port=1"),
        ],
        ["station-boot"],
    ),
]


def _transcript_entry(t: Transcript) -> dict[str, Any]:
    steps = []
    for at, side, body in t.steps:
        lost = body.endswith(" !lost")
        step: dict[str, Any] = {"t": at, "from": side, "line": line(body.removesuffix(" !lost"))}
        if lost:
            step["lost"] = True
        steps.append(step)
    return {"name": t.name, "about": t.about, "checks": t.checks, "steps": steps}


# --- what a vehicle answers ----------------------------------------------------------------------


@dataclass(frozen=True)
class VehicleCase:
    name: str
    why: str
    receive: list[str]
    """Bodies, or whole lines (starting with '$') sent as they are."""
    replies: list[dict[str, Any]]
    """Each expected reply: kind, seq, message and the fields that must match."""


def _r(seq: int, message: str, **fields: Any) -> dict[str, Any]:
    return {"kind": "R", "seq": seq, "message": message, "fields": fields}


VEHICLE: list[VehicleCase] = [
    VehicleCase(
        "grant",
        "a GRANT is confirmed with the limit applied",
        ["Q03 GRANT i=4 v=42 why=shared"],
        [_r(3, "GRANT", i=4)],
    ),
    VehicleCase(
        "grant-zero",
        "GRANT i=0: draw nothing",
        ["Q08 GRANT i=0 v=42 why=rotation"],
        [_r(8, "GRANT", i=0)],
    ),
    VehicleCase(
        "grant-unknown-field",
        "unknown fields are ignored",
        ["Q03 GRANT i=2 v=42 colour=red"],
        [_r(3, "GRANT", i=2)],
    ),
    VehicleCase(
        "grant-any-why",
        "GRANT why is an open word",
        ["Q03 GRANT i=2 v=42 why=solar"],
        [_r(3, "GRANT", i=2)],
    ),
    VehicleCase(
        "grant-numbered-00",
        "a request numbered 00 is answered like any other",
        ["Q00 GRANT i=1 v=42"],
        [_r(0, "GRANT", i=1)],
    ),
    VehicleCase(
        "grant-retransmitted",
        "the identical line again gets the same reply again",
        ["Q03 GRANT i=4 v=42 why=shared", "Q03 GRANT i=4 v=42 why=shared"],
        [_r(3, "GRANT", i=4), _r(3, "GRANT", i=4)],
    ),
    VehicleCase(
        "power-off",
        "POWER on=0 is confirmed (the inlet voltage, 0 with power off)",
        ["Q05 POWER on=0"],
        [_r(5, "POWER", v=0)],
    ),
    VehicleCase(
        "power-on",
        "POWER on=1 is confirmed with the inlet voltage",
        ["Q05 POWER on=1"],
        [_r(5, "POWER")],
    ),
    VehicleCase(
        "stop", "STOP from the station is acknowledged", ["Q0B STOP reason=user"], [_r(11, "STOP")]
    ),
    VehicleCase(
        "hello-to-vehicle",
        "a vehicle does not take HELLO",
        ["Q01 HELLO ver=1 type=ebike maker=A model=B"],
        [_r(1, "NAK", code="E208")],
    ),
    VehicleCase(
        "batt-to-vehicle",
        "a vehicle does not take BATT",
        ["Q04 " + BATT],
        [_r(4, "NAK", code="E208")],
    ),
    VehicleCase(
        "req-to-vehicle",
        "a vehicle does not take REQ",
        ["Q05 REQ i=4 v=42"],
        [_r(5, "NAK", code="E208")],
    ),
    VehicleCase(
        "unknown-request", "an unknown request is E200", ["Q07 PING"], [_r(7, "NAK", code="E200")]
    ),
    VehicleCase(
        "grant-out-of-range",
        "i=60 is outside 0..50",
        ["Q03 GRANT i=60 v=42"],
        [_r(3, "NAK", code="E202", field="i", accept="0..50")],
    ),
    VehicleCase(
        "grant-bad-escape",
        "a bad escape is E203",
        ["Q03 GRANT i=1 v=42 why=a%G1"],
        [_r(3, "NAK", code="E203", field="why")],
    ),
    VehicleCase(
        "grant-wrong-checksum",
        "a link error is never answered",
        ["$Q03 GRANT i=4 v=42*0000\r\n"],
        [],
    ),
    VehicleCase(
        "reply-from-station",
        "a reply to no request of the vehicle is ignored",
        ["R09 HELLO ver=1 station=x port=1"],
        [],
    ),
    VehicleCase(
        "notice-numbered-00",
        "a notice numbered 00 is taken, and never answered",
        ["N00 STATE state=ready"],
        [],
    ),
]


def _vehicle_entry(case: VehicleCase) -> dict[str, Any]:
    lines = [b if b.startswith("$") else line(b) for b in case.receive]
    return {"name": case.name, "why": case.why, "receive": lines, "replies": case.replies}


def build_more() -> dict[str, Any]:
    return {
        "stream": [_stream_entry(s) for s in STREAMS],
        "transcripts": [_transcript_entry(t) for t in TRANSCRIPTS],
        "vehicle": [_vehicle_entry(c) for c in VEHICLE],
        "messages": describe_messages(),
    }
