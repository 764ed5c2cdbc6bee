"""Writes docs/pev-link-vectors.json, the PEV Link v1 test vectors. Run by hand after a change:

    .venv/bin/python tests/firmware/pevlink/make_vectors.py

Every line below is written out by hand in its wire form; only the checksum is computed. Valid
lines are decoded with the codec to record their fields, and the script stops if the codec does
not re-encode a canonical line to exactly the same bytes. The error code of every invalid line is
chosen from the specification's rules (docs/pev-link.md: the line grammar, the field table and
the error table), never taken from what the codec returns: where the codec disagrees, the script
says so on stderr and the vector keeps the specification's code.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.pevlink import MAX_LINE_BYTES, ProtocolError, crc16, decode, encode
from firmware.pevlink.codec import message_to_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vectors_more import build_more

OUT = Path(__file__).resolve().parents[3] / "docs" / "pev-link-vectors.json"

FORMAT = (
    "PEV Link v1 test vectors (docs/pev-link.md, section 7). 'valid': lines every receiver MUST "
    "accept; 'kind', 'seq' and 'message' are the frame's kind letter, sequence number (integer) "
    "and message name, 'fields' the decoded message keyed by wire key: decimals and integers as "
    "JSON numbers, hex fields (flags) as the JSON integer they denote, integer lists (ver) as "
    "arrays, words and texts as JSON strings after percent-decoding; optional fields that are "
    "absent are left out, and unknown fields are ignored. A valid vector re-encodes to exactly "
    'its line unless it carries "reencode": false (it is accepted but is not the canonical form '
    "a sender writes). 'invalid': lines a receiver MUST reject with the error code in 'error'. "
    "With 'layer' absent or \"line\" the line itself breaks the rule (framing or message table) "
    'and the decoder must refuse it; with "layer": "station" the line is well formed and a v1 '
    "station that has received nothing else on the port since plug-in answers it with NAK "
    "carrying that code. Each invalid line breaks one rule only, as far as one can: its checksum "
    "is correct unless the checksum is the point, and where a line must break two rules (a name "
    "that is not a name is also no known message) its code is that of the rule checked first "
    "(the order of checks, section 2.5: length, start, characters, checksum, then kind, "
    "sequence number, name and fields, then the message table). 'line' is the line as text with "
    "its terminator (CR LF, or a bare LF where that is the point); 'line_hex' replaces it, as "
    "hexadecimal bytes, when the line holds bytes outside printable ASCII. 'handshake': one "
    "charging session on one port from plug-in to the session summary, in the order the lines "
    "cross the wire, each with the side that sent it. The checksum is CRC-16/CCITT-FALSE (poly "
    "0x1021, init 0xFFFF, no reflection, no final XOR; '123456789' gives 29B1) over the bytes "
    "between '$' and '*'. Since 1.1: 'stream': byte streams for the line assembler ('chunks_hex' "
    "as read, 'out' the lines and framing errors it must give in order, 'noise_bytes' the bytes "
    "outside any line); 'transcripts': timed conversations ('t' seconds, 'from', 'line'; 'lost': "
    "true for a line lost on the way; 'checks' names the timing rules they show); 'vehicle': "
    "lines a vehicle receives ('receive') and the replies it must send ('replies': kind, seq, "
    "message and the fields that must match; empty for no reply); 'messages': the message table "
    "(name, kind, sender and every field's key, type, unit, range, words and whether required)."
)


def frame(body: str | bytes, crc: str | None = None, end: bytes = b"\r\n") -> bytes:
    """``$`` body ``*`` CRC terminator; the CRC is computed over ``body`` unless given."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    check = crc if crc is not None else f"{crc16(raw):04X}"
    return b"$" + raw + b"*" + check.encode("ascii") + end


@dataclass(frozen=True)
class Valid:
    name: str
    body: str
    reencode: bool = True
    crc: str | None = None
    end: bytes = b"\r\n"

    @property
    def line(self) -> bytes:
        return frame(self.body, self.crc, self.end)


@dataclass(frozen=True)
class Invalid:
    name: str
    line: bytes
    error: str
    why: str
    layer: str = "line"


BATT = (
    "Q04 BATT chem=NMC cells=10 vnom=36 vmax=42 vmin=30 cap=500 imax=4 imin=0.5 tmin=0 tmax=40 "
    "soc=40 temp=25"
)
TEL = "N03 TEL soc=40 v=36.9 i=0 temp=25 flags=0"
HELLO = "Q01 HELLO ver=1 type=scooter maker=Acme model=S1"


def _longest_hello() -> str:
    """A HELLO whose line is exactly MAX_LINE_BYTES long (spaces and non-ASCII take 3 bytes)."""
    body = (
        "Q02 HELLO ver=1 type=eunicycle maker=Gotway%20Begode%20Wheels%20Ltd "
        "model=Master%20Pro%20%E2%80%93%20134%20V%20%E2%80%93%20%C3%89dition "
        "serial=GW%202025%200001%204471%200093 fw="
    )
    room = MAX_LINE_BYTES - len(frame(body))
    return body + "2.14.3-build.000000"[:room]


def _too_long_hello() -> str:
    """The same HELLO one byte over the limit (its fields are each within their own limits)."""
    return _longest_hello() + "9"


VALID: list[Valid] = [
    # BOOT, either side
    Valid("boot-vehicle", "N01 BOOT role=vehicle ver=1"),
    Valid("boot-station", "N01 BOOT role=station ver=1"),
    Valid("boot-several-versions", "N2A BOOT role=vehicle ver=1,2,3"),
    # HELLO request: required fields only, all fields, each vehicle type, text at its limits
    Valid("hello-required-only", HELLO),
    Valid(
        "hello-all-fields",
        "Q02 HELLO ver=1 type=ebike maker=Bosch%20class model=36%20V%20e-bike,%20500%20Wh "
        "serial=SIM-1-0001 fw=sim-1",
    ),
    Valid("hello-type-onewheel", "Q01 HELLO ver=1 type=onewheel maker=Future%20Motion model=GT"),
    Valid("hello-type-eskate", "Q01 HELLO ver=1,7 type=eskate maker=Evolve model=Hadean"),
    Valid("hello-type-eunicycle", "Q01 HELLO ver=1 type=eunicycle maker=Begode model=Master"),
    Valid("hello-type-other", "Q01 HELLO ver=1 type=other maker=DIY model=Cargo%20trike"),
    Valid("hello-empty-text", "Q01 HELLO ver=1 type=other maker= model=Prototype"),
    Valid(
        "hello-utf8-text", "Q01 HELLO ver=1 type=ebike maker=M%C3%BCller model=%C3%89clair%20500"
    ),
    Valid(
        "hello-text-at-max-length",
        "Q01 HELLO ver=1 type=scooter maker=ABCDEFGHIJKLMNOPQRSTUVWX "
        "model=abcdefghijklmnopqrstuvwxyz012345 serial=0123456789ABCDEFGHIJKLMN "
        "fw=1.2.3-rc4+build7",
    ),
    Valid("line-at-max-length", _longest_hello()),
    # HELLO reply
    Valid("hello-reply", "R02 HELLO ver=1 station=pev-charger port=1"),
    Valid("hello-reply-upper-bounds", "R02 HELLO ver=99 station=Depot%20#4 port=99"),
    # BATT request and reply
    Valid("batt-required-only", BATT),
    Valid(
        "batt-all-fields",
        "Q04 BATT chem=LFP cells=16 vnom=51.2 vmax=58.4 vmin=40 cap=1200 imax=10 imin=0.5 "
        "tmin=0 tmax=45 soc=12.5 temp=18.3 target=80 depart=3600",
    ),
    Valid(
        "batt-lower-bounds",
        "Q04 BATT chem=LTO cells=1 vnom=6 vmax=6 vmin=3 cap=1 imax=0.1 imin=0 tmin=-40 tmax=80 "
        "soc=0 temp=-40 target=1 depart=0",
    ),
    Valid(
        "batt-upper-bounds",
        "Q04 BATT chem=NCA cells=60 vnom=200 vmax=200 vmin=199.999 cap=20000 imax=50 imin=50 "
        "tmin=79.999 tmax=80 soc=100 temp=120 target=100 depart=604800",
    ),
    Valid(
        "batt-negative-decimals",
        "Q04 BATT chem=LMO cells=13 vnom=48.1 vmax=54.6 vmin=39 cap=720 imax=5 imin=0.25 "
        "tmin=-20 tmax=45 soc=63.7 temp=-5.5",
    ),
    # 1.2: where the vehicle's BMS ends the charge (optional)
    Valid(
        "batt-iend",
        "Q04 BATT chem=NMC cells=10 vnom=36 vmax=42 vmin=30 cap=280 imax=1.7 imin=0.3 tmin=0 "
        "tmax=45 soc=40 temp=25 iend=0.2",
    ),
    Valid("batt-iend-lower-bound", BATT + " iend=0.01"),
    Valid("batt-iend-equals-imax", BATT + " iend=4"),
    Valid(
        "batt-iend-upper-bound",
        "Q04 BATT chem=NCA cells=60 vnom=200 vmax=200 vmin=199.999 cap=20000 imax=50 imin=50 "
        "tmin=79.999 tmax=80 soc=100 temp=120 target=100 depart=604800 iend=50",
    ),
    Valid(
        "batt-iend-first",
        "Q04 BATT iend=0.25 chem=NMC cells=10 vnom=36 vmax=42 vmin=30 cap=500 imax=4 imin=0.5 "
        "tmin=0 tmax=40 soc=40 temp=25",
        reencode=False,
    ),
    Valid("batt-reply", "R04 BATT vmin=12 vmax=84 imax=5 pmax=420"),
    Valid("batt-reply-bounds", "R04 BATT vmin=0 vmax=250 imax=100 pmax=20000"),
    # REQ request and reply
    Valid("req", "Q05 REQ i=4 v=42"),
    Valid("req-lower-bounds", "Q05 REQ i=0 v=6"),
    Valid("req-upper-bounds", "Q05 REQ i=50 v=200"),
    Valid("req-reply-wait-start", "R05 REQ state=wait_start"),
    Valid("req-reply-wait-payment", "R05 REQ state=wait_payment"),
    Valid("req-reply-wait-power", "R05 REQ state=wait_power"),
    Valid("req-reply-granted", "R05 REQ state=granted"),
    # GRANT request and reply
    Valid("grant", "Q03 GRANT i=4 v=42 why=shared"),
    Valid("grant-without-why", "Q03 GRANT i=2.5 v=42"),
    Valid("grant-zero", "Q0C GRANT i=0 v=42 why=paused"),
    Valid("grant-reply", "R03 GRANT i=4"),
    Valid("grant-reply-three-decimals", "R03 GRANT i=1.234"),
    # POWER request and reply
    Valid("power-on", "Q05 POWER on=1"),
    Valid("power-off", "Q0A POWER on=0"),
    Valid("power-reply", "R05 POWER v=36.9"),
    Valid("power-reply-zero", "R0A POWER v=0"),
    Valid("power-reply-upper-bound", "R05 POWER v=250"),
    # TEL: optional fields, BMS flags, bounds
    Valid("tel-required-only", TEL),
    Valid(
        "tel-all-fields", "N06 TEL soc=40 v=39.06 i=4 temp=25 flags=1 cmin=3.903 cmax=3.91 ireq=4"
    ),
    Valid("tel-flags-full-balancing", "N40 TEL soc=100 v=42 i=0.05 temp=31 flags=202 ireq=0"),
    Valid("tel-flags-cell-ov-bms-stop", "N41 TEL soc=97.5 v=41.9 i=0 temp=30 flags=50 cmax=4.251"),
    Valid("tel-flags-charging-hot-derated", "N42 TEL soc=55 v=39.8 i=2.1 temp=44 flags=105"),
    Valid("tel-flags-cold", "N43 TEL soc=20 v=35.2 i=0 temp=-3 flags=8"),
    Valid("tel-flags-cell-uv-imbalance", "N47 TEL soc=3 v=30.1 i=0 temp=22 flags=A0 cmin=2.69"),
    Valid("tel-flags-all-bits", "N44 TEL soc=50 v=38 i=1 temp=25 flags=FFFF"),
    Valid("tel-lower-bounds", "N45 TEL soc=0 v=0 i=-100 temp=-50 flags=0 cmin=0 cmax=0 ireq=0"),
    Valid(
        "tel-upper-bounds", "N46 TEL soc=100 v=250 i=100 temp=150 flags=3FF cmin=5 cmax=5 ireq=50"
    ),
    # HB
    Valid("hb", "N07 HB"),
    Valid("seq-ff", "NFF HB"),
    # STATE: every state, with and without text
    Valid("state-ready", "N01 STATE state=ready text=Ready:%20press%20start"),
    Valid("state-payment", "N02 STATE state=payment"),
    Valid("state-waiting", "N02 STATE state=waiting text=Waiting%20for%20power"),
    Valid("state-granted", "N04 STATE state=granted text=Starting"),
    Valid("state-charging", "N06 STATE state=charging text=Charging"),
    Valid("state-stopping", "N09 STATE state=stopping"),
    Valid("state-done", "N0C STATE state=done text=Stopped%20by%20the%20rider"),
    Valid("state-fault", "N0D STATE state=fault text=Vehicle%20fault:%20cell%20over%20voltage"),
    Valid(
        "state-text-reserved-characters",
        "N10 STATE state=payment text=Fee:%20%242%20%2A%203%20%3D%206%20%22ok%22%20100%25%20a%5Cb",
    ),
    # STOP: every reason, either side; the reply
    Valid("stop-user", "Q08 STOP reason=user"),
    Valid("stop-full", "Q09 STOP reason=full"),
    Valid("stop-target", "Q09 STOP reason=target text=80%25%20reached"),
    Valid("stop-vehicle", "Q09 STOP reason=vehicle text=Stopped%20from%20the%20vehicle"),
    Valid("stop-bms", "Q09 STOP reason=bms"),
    Valid("stop-fault", "Q0E STOP reason=fault text=Over-temperature"),
    Valid("stop-operator", "Q0E STOP reason=operator"),
    Valid("stop-payment", "Q0E STOP reason=payment text=Pre-authorised%20amount%20used"),
    Valid("stop-shutdown", "Q0E STOP reason=shutdown"),
    Valid("stop-reply", "R08 STOP"),
    # FAULT
    Valid("fault-stop-with-text", "N0D FAULT code=overtemp sev=stop text=Battery%2058%20%C2%B0C"),
    Valid("fault-warn", "N0E FAULT code=sensor sev=warn"),
    Valid("fault-cell-ov", "N0F FAULT code=cellov sev=stop text=A%20cell%20is%20over%204.25%20V"),
    *(
        Valid(f"fault-code-{code}", f"N{0x20 + n:02X} FAULT code={code} sev={sev}")
        for n, (code, sev) in enumerate(
            [
                ("overcurrent", "stop"),
                ("overvoltage", "stop"),
                ("mismatch", "stop"),
                ("undertemp", "warn"),
                ("bms", "stop"),
                ("silent", "stop"),
                ("disconnect", "stop"),
                ("budget", "warn"),
                ("link", "stop"),
                ("internal", "stop"),
                ("stage", "stop"),
            ]
        )
    ),
    # SUM
    Valid("sum", "N0B SUM wh=0.084 secs=2 reason=user peak=156.3"),
    Valid("sum-without-peak", "N0B SUM wh=0 secs=0 reason=fault"),
    Valid("sum-upper-bounds", "N0B SUM wh=100000 secs=10000000 reason=full peak=20000"),
    # NAK
    Valid("nak-code-only", "R04 NAK code=E208"),
    Valid(
        "nak-version",
        "R02 NAK code=E207 field=ver accept=1 text=no%20protocol%20version%20in%20common",
    ),
    Valid("nak-range", "R05 NAK code=E202 field=i accept=0..50 text=i%3D60%20outside%200..50%20A"),
    Valid("nak-not-supported", "R04 NAK code=E210 field=vmax accept=84 text=port%20limit%2084%20V"),
    # Accepted, but not the form a sender writes
    Valid("crc-lower-case", "N07 HB", reencode=False, crc=f"{crc16(b'N07 HB'):04x}"),
    Valid("crc-mixed-case", "Q05 REQ i=4 v=42", reencode=False, crc="3aE5"),
    Valid("unknown-field-ignored", "N07 HB x=1", reencode=False),
    Valid("seq-lower-case", "Q0a REQ i=4 v=42", reencode=False),
    Valid("hex-field-lower-case", "N43 TEL soc=20 v=35.2 i=0 temp=-3 flags=1f", reencode=False),
    Valid(
        "hex-field-leading-zeros", "N43 TEL soc=20 v=35.2 i=0 temp=-3 flags=0001", reencode=False
    ),
    Valid("escape-lower-case", "N01 STATE state=ready text=Pr%c3%aat", reencode=False),
    Valid("decimal-trailing-zeros", "Q05 REQ i=4.000 v=42.50", reencode=False),
    Valid("decimal-negative-zero", "Q05 REQ i=-0 v=42", reencode=False),
    Valid("fields-in-another-order", "Q05 REQ v=42 i=4", reencode=False),
    Valid("terminator-bare-lf", "Q05 REQ i=4 v=42", reencode=False, end=b"\n"),
    Valid("unknown-fields-among-known", TEL + " pack_id=7 ext_v2=a%20b", reencode=False),
]


def _with_crc_text(body: str, crc_text: str) -> bytes:
    return b"$" + body.encode("ascii") + b"*" + crc_text.encode("ascii") + b"\r\n"


def _garbage() -> bytes:
    """Binary noise after a '$': no '$', '*' or line feed inside, so only the charset rule fits."""
    noise = bytes((i * 73 + 11) % 256 for i in range(48))
    noise = bytes(b for b in noise if b not in (0x24, 0x2A, 0x0A))
    return b"$" + noise + b"\r\n"


INVALID: list[Invalid] = [
    # E100 malformed: the framing grammar
    Invalid("missing-start", frame("N07 HB")[1:], "E100", "the line does not begin with '$'"),
    Invalid("empty-line", b"\r\n", "E100", "an empty line has no '$', kind or name"),
    Invalid(
        "crc-not-hex", _with_crc_text("N07 HB", "ZZZZ"), "E100", "the checksum is not hexadecimal"
    ),
    Invalid(
        "crc-five-digits",
        _with_crc_text("N07 HB", f"{crc16(b'N07 HB'):04X}0"),
        "E100",
        "the checksum has five digits; it is exactly four",
    ),
    Invalid("missing-name", frame("Q01"), "E100", "no message name after the sequence number"),
    Invalid(
        "name-lower-case",
        frame(HELLO.replace("HELLO", "hello")),
        "E100",
        "a message name is upper-case letters and digits",
    ),
    Invalid(
        "name-too-long",
        frame("N07 HEARTBEATS"),
        "E100",
        "a message name is at most eight characters",
    ),
    Invalid(
        "field-without-equals",
        frame("Q05 REQ i=4 v42"),
        "E100",
        "a field is KEY=VALUE; '=' missing",
    ),
    Invalid("key-upper-case", frame("Q05 REQ I=4 v=42"), "E100", "a key is lower-case"),
    Invalid("key-starts-with-digit", frame("N07 HB 1x=2"), "E100", "a key begins with a letter"),
    Invalid(
        "key-too-long",
        frame("N07 HB abcdefghijklm=1"),
        "E100",
        "a key is at most twelve characters (this one has thirteen)",
    ),
    Invalid("key-with-hyphen", frame("N07 HB max-i=1"), "E100", "a key holds a-z, 0-9 and '_'"),
    Invalid("key-empty", frame("N07 HB =1"), "E100", "a field with an empty key"),
    Invalid("double-space", frame("Q05 REQ i=4  v=42"), "E100", "parts are separated by one space"),
    Invalid(
        "trailing-space", frame("Q05 REQ i=4 v=42 "), "E100", "a space before '*' starts no field"
    ),
    # E101 checksum
    Invalid(
        "crc-wrong",
        _with_crc_text("Q05 REQ i=4 v=42", "3AE6"),
        "E101",
        "the checksum is off by one (3AE5 is right)",
    ),
    Invalid(
        "crc-body-altered",
        _with_crc_text("Q05 REQ i=9 v=42", "3AE5"),
        "E101",
        "the current was changed from 4 to 9 after the checksum was computed",
    ),
    Invalid(
        "crc-over-dollar",
        _with_crc_text("N07 HB", f"{crc16(b'$N07 HB'):04X}"),
        "E101",
        "the checksum was computed including '$'; it covers only what lies between '$' and '*'",
    ),
    Invalid(
        "crc-over-terminator",
        _with_crc_text("N07 HB", f"{crc16(b'N07 HB*'):04X}"),
        "E101",
        "the checksum was computed including '*'",
    ),
    Invalid(
        "crc-byte-swapped",
        _with_crc_text("N07 HB", f"{crc16(b'N07 HB'):04X}"[2:] + f"{crc16(b'N07 HB'):04X}"[:2]),
        "E101",
        "the checksum's two bytes are written in the wrong order",
    ),
    # E102 too long
    Invalid(
        "line-one-byte-too-long",
        frame(_too_long_hello()),
        "E102",
        f"{MAX_LINE_BYTES + 1} bytes including CR LF; the limit is {MAX_LINE_BYTES}",
    ),
    Invalid(
        "line-far-too-long",
        frame("N07 HB x=" + "x" * 300),
        "E102",
        "a line of more than 300 bytes (its one field is unknown, so only the length is wrong)",
    ),
    # E103 truncated
    Invalid("no-checksum", b"$Q05 REQ i=4 v=42\r\n", "E103", "the line ends with no '*' checksum"),
    Invalid(
        "checksum-three-digits",
        _with_crc_text("Q05 REQ i=4 v=42", "3AE"),
        "E103",
        "the line ends after three of the checksum's four digits",
    ),
    Invalid(
        "checksum-marker-only", b"$Q05 REQ i=4 v=42*\r\n", "E103", "the line ends right after '*'"
    ),
    Invalid("dollar-only", b"$\r\n", "E103", "the line ends right after '$'"),
    Invalid(
        "cut-without-terminator",
        b"$Q04 BATT chem=NM",
        "E103",
        "the line stops in the middle of a field (no checksum, no terminator)",
    ),
    Invalid(
        "new-dollar-inside",
        frame("N10 STATE state=payment text=US$5"),
        "E103",
        "a raw '$' inside a value begins a new line before the checksum (it must be sent as %24)",
    ),
    # E104 charset
    Invalid(
        "nul-byte",
        frame("N03 TEL soc=40 v=36.9\x00 i=0 temp=25 flags=0"),
        "E104",
        "a NUL byte (0x00) inside the line",
    ),
    Invalid(
        "tab-in-line", frame("Q05 REQ i=4\tv=42"), "E104", "a TAB (0x09) where a space belongs"
    ),
    Invalid(
        "raw-utf8",
        frame("N01 STATE state=ready text=Pr\u00eat"),
        "E104",
        "a raw UTF-8 character; outside printable ASCII it must be percent-encoded (%C3%AA)",
    ),
    Invalid("del-byte", frame("N07 HB x=\x7f"), "E104", "DEL (0x7F) is not printable"),
    Invalid(
        "bare-cr-inside",
        frame("Q05 REQ i=4\r v=42"),
        "E104",
        "a carriage return (0x0D) in the middle of the line",
    ),
    Invalid("high-byte", frame(b"N07 HB x=\xff"), "E104", "byte 0xFF in a value"),
    Invalid(
        "binary-garbage",
        _garbage(),
        "E104",
        "binary noise after a '$', with no '*' and no line feed inside",
    ),
    # E105 sequence number
    Invalid(
        "seq-one-digit",
        frame("Q1 HELLO ver=1 type=ebike maker=A model=B"),
        "E105",
        "the sequence number has one digit; it is exactly two",
    ),
    Invalid(
        "seq-three-digits",
        frame("Q001 REQ i=4 v=42"),
        "E105",
        "the sequence number has three digits; it is exactly two",
    ),
    Invalid("seq-not-hex", frame("Q0G REQ i=4 v=42"), "E105", "G is not a hexadecimal digit"),
    Invalid(
        "seq-separated",
        frame("Q 01 REQ i=4 v=42"),
        "E105",
        "the sequence number follows the kind letter with no space",
    ),
    Invalid("seq-missing", frame("N HB"), "E105", "no sequence number after the kind"),
    # E106 kind
    Invalid("kind-unknown", frame("X01 HB"), "E106", "X is not Q, R or N"),
    Invalid("kind-lower-case", frame("q05 REQ i=4 v=42"), "E106", "kind letters are upper-case"),
    Invalid("kind-space", frame(" N07 HB"), "E106", "a space where the kind letter belongs"),
    # E200 unknown message
    Invalid("message-unknown", frame("Q05 CHARGE i=4"), "E200", "v1 defines no message CHARGE"),
    Invalid("hello-as-notice", frame("N" + HELLO[1:]), "E200", "HELLO is a request, not a notice"),
    Invalid("tel-as-request", frame("Q" + TEL[1:]), "E200", "TEL is a notice, not a request"),
    Invalid("nak-as-request", frame("Q05 NAK code=E200"), "E200", "NAK exists only as a reply"),
    Invalid("hb-as-reply", frame("R07 HB"), "E200", "HB exists only as a notice"),
    Invalid(
        "sum-as-reply",
        frame("R0B SUM wh=1 secs=2 reason=user"),
        "E200",
        "SUM exists only as a notice",
    ),
    # E201 missing field
    Invalid(
        "hello-missing-model", frame(HELLO.replace(" model=S1", "")), "E201", "model is required"
    ),
    Invalid("batt-missing-soc", frame(BATT.replace(" soc=40", "")), "E201", "soc is required"),
    Invalid("tel-missing-flags", frame(TEL.replace(" flags=0", "")), "E201", "flags is required"),
    Invalid("power-missing-on", frame("Q05 POWER"), "E201", "on is required"),
    Invalid("sum-missing-reason", frame("N0B SUM wh=1 secs=2"), "E201", "reason is required"),
    Invalid("nak-missing-code", frame("R04 NAK field=vmax"), "E201", "code is required in a NAK"),
    Invalid("fault-missing-sev", frame("N0D FAULT code=overtemp"), "E201", "sev is required"),
    Invalid(
        "boot-missing-ver",
        frame("N01 BOOT role=vehicle"),
        "E201",
        "BOOT must list the versions its sender speaks",
    ),
    # E202 out of range
    Invalid(
        "hello-ver-zero",
        frame(HELLO.replace("ver=1", "ver=0")),
        "E202",
        "each version number is 1..99",
    ),
    Invalid(
        "hello-ver-100",
        frame(HELLO.replace("ver=1", "ver=1,100")),
        "E202",
        "each version number is 1..99",
    ),
    Invalid("batt-cells-61", frame(BATT.replace("cells=10", "cells=61")), "E202", "cells is 1..60"),
    Invalid(
        "batt-imax-below-min",
        frame(BATT.replace("imax=4 imin=0.5", "imax=0.099 imin=0")),
        "E202",
        "imax is 0.1..50 A",
    ),
    Invalid(
        "batt-soc-over-100", frame(BATT.replace("soc=40", "soc=100.001")), "E202", "soc is 0..100 %"
    ),
    Invalid(
        "batt-temp-below-min",
        frame(BATT.replace("temp=25", "temp=-40.001")),
        "E202",
        "temp is -40..120 °C",
    ),
    Invalid(
        "batt-depart-over-week",
        frame(BATT + " depart=604801"),
        "E202",
        "depart is 0..604800 s",
    ),
    Invalid(
        "batt-iend-below-min",
        frame(BATT + " iend=0.009"),
        "E202",
        "iend is 0.01..50 A (1.2)",
    ),
    Invalid("batt-iend-zero", frame(BATT + " iend=0"), "E202", "iend is 0.01..50 A (1.2)"),
    Invalid(
        "batt-iend-over-50",
        frame(BATT.replace("imax=4", "imax=50") + " iend=50.001"),
        "E202",
        "iend is 0.01..50 A (1.2)",
    ),
    Invalid("power-on-2", frame("Q05 POWER on=2"), "E202", "on is 0 or 1"),
    Invalid("power-on-negative", frame("Q05 POWER on=-1"), "E202", "on is 0 or 1"),
    Invalid("grant-over-50", frame("Q03 GRANT i=50.001 v=42"), "E202", "i is 0..50 A"),
    Invalid("req-voltage-below-6", frame("Q05 REQ i=4 v=5.999"), "E202", "v is 6..200 V"),
    Invalid(
        "tel-current-below-min",
        frame(TEL.replace("i=0", "i=-100.001")),
        "E202",
        "i is -100..100 A",
    ),
    Invalid(
        "hello-reply-port-0", frame("R02 HELLO ver=1 station=S port=0"), "E202", "port is 1..99"
    ),
    Invalid(
        "hello-maker-too-long",
        frame(HELLO.replace("maker=Acme", "maker=ABCDEFGHIJKLMNOPQRSTUVWXY")),
        "E202",
        "maker is at most 24 characters (this one has 25)",
    ),
    Invalid(
        "state-text-too-long",
        frame("N0D STATE state=fault text=" + "x" * 49),
        "E202",
        "text is at most 48 characters (this one has 49)",
    ),
    # E203 wrong type
    Invalid(
        "tel-soc-text",
        frame(TEL.replace("soc=40", "soc=abc")),
        "E203",
        "soc is a decimal number, not a word",
    ),
    Invalid("power-on-word", frame("Q05 POWER on=yes"), "E203", "on is an integer, not a word"),
    Invalid(
        "batt-cells-decimal",
        frame(BATT.replace("cells=10", "cells=10.0")),
        "E203",
        "cells is an integer: no decimal point",
    ),
    Invalid(
        "batt-cells-leading-zero",
        frame(BATT.replace("cells=10", "cells=010")),
        "E203",
        "numbers have no leading zeros",
    ),
    Invalid(
        "batt-soc-exponent",
        frame(BATT.replace("soc=40", "soc=4e1")),
        "E203",
        "decimals are written without an exponent",
    ),
    Invalid(
        "req-no-leading-digit", frame("Q05 REQ i=.5 v=42"), "E203", "a decimal starts with a digit"
    ),
    Invalid(
        "req-plus-sign", frame("Q05 REQ i=+4 v=42"), "E203", "a positive number has no '+' sign"
    ),
    Invalid(
        "req-empty-number", frame("Q05 REQ i= v=42"), "E203", "the value of a number field is empty"
    ),
    Invalid(
        "req-trailing-point",
        frame("Q05 REQ i=4. v=42"),
        "E203",
        "a decimal point must be followed by digits",
    ),
    Invalid(
        "grant-four-decimals",
        frame("Q03 GRANT i=4.1234 v=42"),
        "E203",
        "a decimal has at most three digits after the point",
    ),
    Invalid("req-decimal-comma", frame("Q05 REQ i=4,5 v=42"), "E203", "the decimal mark is '.'"),
    Invalid(
        "hello-ver-empty-item",
        frame(HELLO.replace("ver=1", "ver=1,,2")),
        "E203",
        "an integer list has no empty items",
    ),
    Invalid(
        "hello-ver-semicolon",
        frame(HELLO.replace("ver=1", "ver=1;2")),
        "E203",
        "the items of an integer list are separated by commas",
    ),
    Invalid(
        "tel-flags-0x",
        frame(TEL.replace("flags=0", "flags=0x1F")),
        "E203",
        "hex fields are written without a 0x prefix",
    ),
    Invalid(
        "tel-flags-five-digits",
        frame(TEL.replace("flags=0", "flags=10000")),
        "E203",
        "a hex field has one to four digits",
    ),
    Invalid(
        "batt-cap-seven-digits",
        frame(BATT.replace("cap=500", "cap=1000000")),
        "E203",
        "a decimal has at most six digits before the point",
    ),
    Invalid(
        "hello-nine-versions",
        frame(HELLO.replace("ver=1", "ver=1,2,3,4,5,6,7,8,9")),
        "E203",
        "an integer list has one to eight items",
    ),
    Invalid(
        "tel-flags-not-hex",
        frame(TEL.replace("flags=0", "flags=1G")),
        "E203",
        "G is not a hexadecimal digit",
    ),
    Invalid(
        "escape-not-hex",
        frame("N0D STATE state=fault text=50%G1"),
        "E203",
        "'%' must be followed by two hexadecimal digits",
    ),
    Invalid(
        "escape-cut",
        frame("N0D STATE state=fault text=50%4"),
        "E203",
        "the escape is cut short: '%4' at the end of the value",
    ),
    Invalid(
        "escape-bare-percent",
        frame("N0D STATE state=fault text=100%"),
        "E203",
        "a raw '%' at the end of the value (it must be sent as %25)",
    ),
    Invalid(
        "escape-not-utf8",
        frame("N0D STATE state=fault text=%FF%FE"),
        "E203",
        "the escaped bytes are not UTF-8",
    ),
    Invalid(
        "field-order-escape-before-malformed",
        frame("Q05 HELLO ver=1 type=ebike maker=Kit%G1 model=Kit bogus"),
        "E203",
        "fields are checked in line order: the bad escape comes before the field that is not "
        "key=value, so the line is E203 (a request is answered with NAK)",
    ),
    Invalid(
        "field-order-malformed-before-escape",
        frame("Q05 HELLO ver=1 type=ebike bogus maker=Kit%G1 model=Kit"),
        "E100",
        "fields are checked in line order: 'bogus' is not key=value before the bad escape, so "
        "the line is E100 and never answered",
    ),
    Invalid(
        "grant-why-empty",
        frame("Q03 GRANT i=4 v=42 why="),
        "E203",
        "the value of a word field is empty",
    ),
    # E204 duplicate field
    Invalid("hello-ver-twice", frame(HELLO + " ver=1"), "E204", "ver appears twice"),
    Invalid("req-i-twice", frame("Q05 REQ i=4 v=42 i=5"), "E204", "i appears twice"),
    Invalid(
        "unknown-key-twice",
        frame("N07 HB x=1 x=1"),
        "E204",
        "an unknown key appears twice: unknown fields are ignored, duplicates are not",
    ),
    # E205 unknown value
    Invalid(
        "hello-type-car",
        frame(HELLO.replace("scooter", "car")),
        "E205",
        "car is not a vehicle type",
    ),
    Invalid(
        "batt-chem-lower-case",
        frame(BATT.replace("chem=NMC", "chem=nmc")),
        "E205",
        "chemistry words are upper-case",
    ),
    Invalid(
        "stop-reason-unknown", frame("Q08 STOP reason=bored"), "E205", "bored is not a stop reason"
    ),
    Invalid(
        "fault-sev-unknown",
        frame("N0D FAULT code=overtemp sev=panic"),
        "E205",
        "sev is warn or stop",
    ),
    Invalid(
        "fault-code-unknown",
        frame("N0D FAULT code=fire sev=stop"),
        "E205",
        "fire is not a fault code",
    ),
    Invalid("state-unknown", frame("N01 STATE state=idle"), "E205", "idle is not a station state"),
    Invalid(
        "boot-role-unknown",
        frame("N01 BOOT role=charger ver=1"),
        "E205",
        "role is station or vehicle",
    ),
    Invalid(
        "req-reply-unknown", frame("R05 REQ state=later"), "E205", "later is not a REQ reply state"
    ),
    # E206 inconsistent
    Invalid(
        "batt-vmin-equals-vnom",
        frame(BATT.replace("vmin=30", "vmin=36")),
        "E206",
        "vmin must lie below vnom",
    ),
    Invalid(
        "batt-vnom-above-vmax",
        frame(BATT.replace("vnom=36", "vnom=43")),
        "E206",
        "vnom must not exceed vmax",
    ),
    Invalid(
        "batt-imin-above-imax",
        frame(BATT.replace("imin=0.5", "imin=4.5")),
        "E206",
        "imin must not exceed imax",
    ),
    Invalid(
        "batt-iend-above-imax",
        frame(BATT + " iend=4.001"),
        "E206",
        "iend must not exceed imax (1.2; NAK accept=4)",
    ),
    Invalid(
        "batt-tmin-equals-tmax",
        frame(BATT.replace("tmin=0", "tmin=40")),
        "E206",
        "tmin must lie below tmax",
    ),
    # Well-formed lines the station refuses
    Invalid(
        "hello-version-2-only",
        frame(HELLO.replace("ver=1", "ver=2")),
        "E207",
        "a v1 station shares no version with a vehicle that speaks only 2 (NAK accept=1)",
        layer="station",
    ),
    Invalid(
        "hello-versions-without-1",
        frame(HELLO.replace("ver=1", "ver=2,3,4")),
        "E207",
        "no version in common with a v1 station",
        layer="station",
    ),
    Invalid(
        "batt-before-hello",
        frame(BATT),
        "E208",
        "BATT before HELLO: the station does not know the vehicle yet",
        layer="station",
    ),
    Invalid(
        "req-before-batt",
        frame("Q05 REQ i=4 v=42"),
        "E208",
        "REQ before a battery profile was accepted",
        layer="station",
    ),
]


HANDSHAKE: list[tuple[str, str]] = [
    ("vehicle", "N01 BOOT role=vehicle ver=1"),
    (
        "vehicle",
        "Q02 HELLO ver=1 type=ebike maker=Bosch%20class model=36%20V%20e-bike,%20500%20Wh "
        "serial=SIM-1-0001 fw=sim-1",
    ),
    ("vehicle", "N03 TEL soc=40 v=36.9 i=0 temp=25 flags=0 cmin=3.687 cmax=3.694 ireq=4"),
    ("station", "R02 HELLO ver=1 station=pev-charger port=1"),
    ("vehicle", BATT),
    ("station", "R04 BATT vmin=12 vmax=84 imax=5 pmax=420"),
    ("station", "N01 STATE state=ready text=Ready:%20press%20start"),
    ("vehicle", "Q05 REQ i=4 v=42"),
    ("station", "R05 REQ state=wait_start"),
    ("station", "N02 STATE state=waiting text=Waiting%20for%20power"),
    ("station", "Q03 GRANT i=4 v=42 why=shared"),
    ("vehicle", "R03 GRANT i=4"),
    ("station", "N04 STATE state=granted text=Starting"),
    ("station", "Q05 POWER on=1"),
    ("vehicle", "R05 POWER v=36.9"),
    ("station", "N06 STATE state=charging text=Charging"),
    ("vehicle", "N06 TEL soc=40 v=39.06 i=4 temp=25 flags=1 cmin=3.903 cmax=3.91 ireq=4"),
    ("station", "N07 HB"),
    ("vehicle", "N07 TEL soc=40.1 v=39.07 i=4 temp=25.1 flags=1 cmin=3.904 cmax=3.911 ireq=4"),
    ("station", "Q08 STOP reason=user"),
    ("station", "N09 STATE state=stopping text=Stopping"),
    ("vehicle", "R08 STOP"),
    ("vehicle", "N08 TEL soc=40.1 v=37.2 i=0.1 temp=25.1 flags=0 cmin=3.717 cmax=3.724 ireq=0"),
    ("station", "Q0A POWER on=0"),
    ("vehicle", "R0A POWER v=0"),
    ("station", "N0B SUM wh=0.084 secs=2 reason=user peak=156.3"),
    ("station", "N0C STATE state=done text=Stopped%20by%20the%20rider"),
]


def _line_entry(line: bytes) -> dict[str, str]:
    body = line[:-2] if line.endswith(b"\r\n") else line
    if all(0x20 <= b <= 0x7E for b in body):
        return {"line": line.decode("ascii")}
    return {"line_hex": line.hex()}


def _valid_entry(vector: Valid) -> dict[str, Any]:
    line = vector.line
    decoded = decode(line)
    if vector.reencode and encode(decoded.message, decoded.seq) != line:
        raise SystemExit(
            f"{vector.name}: not canonical, the codec writes "
            f"{encode(decoded.message, decoded.seq)!r}"
        )
    entry: dict[str, Any] = {
        "name": vector.name,
        "line": line.decode("ascii"),
        "kind": decoded.kind,
        "seq": decoded.seq,
        "message": decoded.message.NAME,
        "fields": message_to_dict(decoded.message)["fields"],
    }
    if not vector.reencode:
        entry["reencode"] = False
    return entry


def _codec_verdict(line: bytes) -> str:
    try:
        decode(line)
    except ProtocolError as err:
        return err.code.wire
    return "accepted"


def build() -> dict[str, Any]:
    assert crc16(b"123456789") == 0x29B1
    names = [v.name for v in VALID] + [v.name for v in INVALID]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise SystemExit(f"duplicate vector names: {sorted(duplicates)}")
    invalid = []
    for vector in INVALID:
        verdict = _codec_verdict(vector.line)
        expected = "accepted" if vector.layer == "station" else vector.error
        if verdict != expected:
            print(
                f"codec disagrees on {vector.name}: spec {expected}, codec {verdict}",
                file=sys.stderr,
            )
        entry: dict[str, Any] = {"name": vector.name, **_line_entry(vector.line)}
        entry["error"] = vector.error
        if vector.layer != "line":
            entry["layer"] = vector.layer
        entry["why"] = vector.why
        invalid.append(entry)
    return {
        "format": FORMAT,
        "version": 1,
        "valid": [_valid_entry(v) for v in VALID],
        "invalid": invalid,
        "handshake": [
            {"from": side, "line": frame(body).decode("ascii")} for side, body in HANDSHAKE
        ],
        **build_more(),
    }


def dumps(data: dict[str, Any]) -> str:
    """JSON with one vector per line, so that a change shows as a one-line diff."""
    parts = []
    for key, value in data.items():
        if isinstance(value, list):
            items = ",\n".join("  " + json.dumps(item, ensure_ascii=True) for item in value)
            parts.append(f" {json.dumps(key)}: [\n{items}\n ]")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=True)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main() -> None:
    data = build()
    OUT.write_text(dumps(data), encoding="utf-8")
    print(
        f"wrote {OUT}: {len(data['valid'])} valid, {len(data['invalid'])} invalid, "
        f"{len(data['handshake'])} handshake lines"
    )


if __name__ == "__main__":
    main()
