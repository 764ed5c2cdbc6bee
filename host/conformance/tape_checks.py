"""Checks over the whole tape: rules every line of the device under test must keep, all run long."""

from __future__ import annotations

import itertools

from firmware.pevlink.errors import ProtocolError
from firmware.pevlink.framing import MAX_LINE_BYTES, Frame
from firmware.pevlink.messages import Nak
from firmware.pevlink.timers import N_RETRIES, T_HB_PERIOD, T_REPLY
from host.conformance.report import Results
from host.conformance.wire import Entry, Wire

HB_ALLOWED_S = 1.5 * T_HB_PERIOD
"""The longest gap between two lines of a live side (§2.7: HB after T_HB_PERIOD, checked every
half period)."""


def _around(wire: Wire, entry: Entry, before: int = 6) -> list[str]:
    return wire.around(entry.index, before)


def _frame(raw: bytes) -> Frame | None:
    """Kind, number and name of the kit's own lines, even those it sent broken on purpose."""
    head = raw[1:].split(b"*", 1)[0].split(b" ")
    if not raw.startswith(b"$") or len(head) < 2 or len(head[0]) != 3:
        return None
    try:
        return Frame(head[0][:1].decode(), int(head[0][1:], 16), head[1].decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None


def well_formed(wire: Wire, results: Results, rid: str, sender: str) -> None:
    bad = 0
    for entry in wire.received():
        problem = ""
        if isinstance(entry.result, ProtocolError):
            problem = str(entry.result)
        else:
            raw = entry.raw
            star = raw.rfind(b"*")
            message = entry.result.message
            if not raw.endswith(b"\r\n"):
                problem = "the line does not end with CR LF"
            elif len(raw) > MAX_LINE_BYTES:
                problem = f"{len(raw)} bytes, more than {MAX_LINE_BYTES}"
            elif (
                raw[2:4] != raw[2:4].upper()
                or raw[star + 1 : star + 5] != raw[star + 1 : star + 5].upper()
            ):
                problem = "hexadecimal digits in lower case (senders write upper case)"
            elif message.SENDER not in (sender, "either"):
                problem = f"{message.NAME} is not sent by a {sender}"
        if problem:
            bad += 1
            if bad == 1:
                results.failed(rid, f"line {entry.index}: {problem}", _around(wire, entry))
    if not bad and wire.received():
        results.passed(rid)


def replies_echo(wire: Wire, results: Results, rid: str) -> None:
    asked: dict[int, str] = {}
    ok = True
    for entry in wire.entries:
        if entry.direction == "tx":
            frame = _frame(entry.raw)
            if frame is not None and frame.kind == "Q":
                asked[frame.seq] = frame.name
            continue
        decoded = entry.decoded
        if decoded is None:
            continue
        if decoded.kind == "R":
            name = decoded.message.NAME
            wanted = asked.get(decoded.seq)
            if wanted is None or name not in (wanted, Nak.NAME):
                why = (
                    f"reply R{decoded.seq:02X} {name} answers no request of the kit numbered "
                    f"{decoded.seq:02X}"
                    if wanted is None
                    else f"reply R{decoded.seq:02X} {name} to the kit's {wanted} request"
                )
                results.failed(rid, why, _around(wire, entry))
                ok = False
                break
    if ok and any(e.decoded and e.decoded.kind == "R" for e in wire.received()):
        results.passed(rid)


def numbering(wire: Wire, results: Results, rid: str) -> None:
    previous: Entry | None = None
    for entry in wire.received():
        decoded = entry.decoded
        if decoded is None or decoded.kind != "Q":
            continue
        if decoded.seq == 0:
            results.failed(rid, f"line {entry.index}: a request numbered 00", _around(wire, entry))
            return
        if previous is not None and previous.raw != entry.raw:
            before = previous.decoded
            assert before is not None
            if before.seq == decoded.seq:
                results.failed(
                    rid,
                    f"line {entry.index}: a new request with the number of the previous one "
                    f"({decoded.seq:02X})",
                    _around(wire, entry),
                )
                return
        previous = entry
    if previous is not None:
        results.passed(rid)


def one_outstanding(wire: Wire, results: Results, rid: str, slack: float) -> None:
    """A new request only once the previous one was answered, or its retries were spent."""
    open_request: Entry | None = None
    answered: set[int] = set()
    give_up = (N_RETRIES + 1) * T_REPLY - slack
    seen_any = False
    for entry in wire.entries:
        decoded = entry.decoded
        if decoded is None:
            continue
        if entry.direction == "tx" and decoded.kind == "R":
            answered.add(decoded.seq)
            continue
        if decoded.message.NAME == "BOOT":
            # Either side's BOOT ends every outstanding request (§2.10): the peer forgets its own
            # on our BOOT, and its own BOOT starts it over (a retry may cross our BOOT on the line).
            open_request = None
            continue
        if entry.direction != "rx" or decoded.kind != "Q":
            continue
        seen_any = True
        if open_request is not None and open_request.raw != entry.raw:
            first = open_request.decoded
            assert first is not None
            if first.seq not in answered and entry.t - open_request.t < give_up:
                results.failed(
                    rid,
                    f"line {entry.index}: {decoded.message.NAME} sent while "
                    f"{first.message.NAME} (Q{first.seq:02X}) was still outstanding",
                    _around(wire, entry),
                )
                return
        if open_request is None or open_request.raw != entry.raw:
            open_request = entry
            answered.discard(decoded.seq)
    if seen_any:
        results.passed(rid)


def heartbeat(
    wire: Wire, results: Results, rid: str, slack: float, until: float | None = None
) -> None:
    """No silence longer than 1.5 T_HB_PERIOD between the device's lines while it is up."""
    times = [e.t for e in wire.received() if e.decoded is not None]
    if until is not None:
        times = [t for t in times if t <= until]
    if len(times) < 2:
        results.untestable(rid, "too few lines from the device")
        return
    for a, b in itertools.pairwise(times):
        if b - a > HB_ALLOWED_S + slack:
            index = next(e.index for e in wire.entries if e.t >= b and e.direction == "rx")
            results.failed(
                rid,
                f"{b - a:.2f} s without a line from the device (at most {HB_ALLOWED_S:g} s)",
                wire.around(index, 8),
            )
            return
    results.passed(rid)
