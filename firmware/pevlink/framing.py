"""PEV Link framing: lines, checksum, and a bounded line buffer.

A line is ``$`` KIND SEQ SP NAME *(SP KEY=VALUE) ``*`` CRC ``\\r\\n``, printable ASCII only.
The CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
XOR) over every character after ``$`` up to and excluding ``*``; it is written as four uppercase
hexadecimal digits and accepted in either case. Pure functions, no I/O.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

from firmware.pevlink.errors import ErrorCode, ProtocolError

MAX_LINE_BYTES = 200
"""Longest line including ``$`` and the ``\\r\\n`` terminator."""

START = ord("$")
CRC_MARK = ord("*")
KINDS = ("Q", "R", "N")
"""Request (expects a reply), Reply (echoes the request's sequence), Notice (no reply)."""

_NAME = re.compile(r"[A-Z][A-Z0-9]{0,7}\Z")
_KEY = re.compile(r"[a-z][a-z0-9_]{0,11}\Z")
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}\Z")
SEQ_TEXT: dict[str, int] = {
    f"{hi}{lo}": int(f"{hi}{lo}", 16)
    for hi in "0123456789ABCDEFabcdef"
    for lo in "0123456789ABCDEFabcdef"
}
SEQ_BYTES: dict[bytes, int] = {text.encode("ascii"): seq for text, seq in SEQ_TEXT.items()}
"""Every two-digit hexadecimal sequence number, in either case, and its value."""
_HEX4_BYTES = re.compile(rb"[0-9A-Fa-f]{4}\Z")
_SAFE_VALUE = re.compile(rb"[!#&'()+,\-./0-9:;<>?@A-Z\[\]^_`a-z{|}~]")
_SAFE_TEXT = re.compile(r"[!#&'()+,\-./0-9:;<>?@A-Z\[\]^_`a-z{|}~]*\Z")
"""A value made only of safe characters goes on the wire as it is (the common case)."""
_PRINTABLE = re.compile(rb"[\x20-\x7e]*\Z")
_KNOWN_LIMIT = 512
_good_names: set[str] = set()
_good_keys: set[str] = set()
"""Names and keys already seen to be well formed (a few dozen in practice; bounded all the same)."""


def _good(word: str, pattern: re.Pattern[str], seen: set[str]) -> bool:
    if word in seen:
        return True
    if not pattern.match(word):
        return False
    if len(seen) < _KNOWN_LIMIT:
        seen.add(word)
    return True


def good_name(word: str) -> bool:
    """A well-formed message name (``[A-Z][A-Z0-9]{0,7}``)."""
    return _good(word, _NAME, _good_names)


def good_key(word: str) -> bool:
    """A well-formed field key (``[a-z][a-z0-9_]{0,11}``)."""
    return _good(word, _KEY, _good_keys)


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: ``crc16(b"123456789") == 0x29B1``."""
    return binascii.crc_hqx(data, 0xFFFF)


@dataclass(frozen=True, slots=True)
class Frame:
    """A line split into its parts; values are still text (percent-decoded)."""

    kind: str
    seq: int
    name: str
    fields: tuple[tuple[str, str], ...] = ()

    def get(self, key: str) -> str | None:
        for k, v in self.fields:
            if k == key:
                return v
        return None


def quote(value: str) -> str:
    """Percent-encode everything that is not a safe printable character (UTF-8 first)."""
    if _SAFE_TEXT.match(value):
        return value
    out: list[str] = []
    for byte in value.encode("utf-8"):
        if _SAFE_VALUE.fullmatch(bytes([byte])):
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def unquote(value: str, key: str = "") -> str:
    if "%" not in value and value.isascii():
        return value
    raw = bytearray()
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "%":
            pair = value[i + 1 : i + 3]
            if not _HEX2.match(pair):
                raise ProtocolError(
                    ErrorCode.WRONG_TYPE,
                    f"bad percent escape in {key or 'value'}",
                    field=key or None,
                )
            raw.append(int(pair, 16))
            i += 3
        else:
            raw.append(ord(ch))
            i += 1
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            ErrorCode.WRONG_TYPE, f"{key or 'value'} is not UTF-8", field=key or None
        ) from exc


def encode_frame(frame: Frame) -> bytes:
    """Serialise a frame to a complete line with checksum and terminator."""
    if frame.kind not in KINDS:
        raise ValueError(f"unknown kind {frame.kind!r}")
    if not 0 <= frame.seq <= 0xFF:
        raise ValueError("sequence number must be 0..255")
    if not _good(frame.name, _NAME, _good_names):
        raise ValueError(f"bad message name {frame.name!r}")
    parts = [f"{frame.kind}{frame.seq:02X}", frame.name]
    for key, value in frame.fields:
        if not _good(key, _KEY, _good_keys):
            raise ValueError(f"bad field key {key!r}")
        parts.append(f"{key}={quote(value)}")
    body = " ".join(parts).encode("ascii")
    line = b"$" + body + b"*" + f"{crc16(body):04X}".encode("ascii") + b"\r\n"
    if len(line) > MAX_LINE_BYTES:
        raise ValueError(f"line of {len(line)} bytes exceeds {MAX_LINE_BYTES}")
    return line


def parse_frame(line: bytes) -> Frame:
    """Split one line (with or without its terminator) into a :class:`Frame`.

    Raises :class:`ProtocolError` with a 1xx code for framing errors; the ``seq`` is set only once
    the checksum has been verified, because an unverified sequence number must not be answered.
    """
    kind, seq, name, fields = split_body(checked_body(line).decode("ascii"))
    return Frame(kind, seq, name, tuple(fields.items()))


def checked_body(line: bytes) -> bytes:
    """The characters between ``$`` and ``*`` of one line, once its length, characters and
    checksum are verified (the first half of :func:`parse_frame`)."""
    if len(line) > MAX_LINE_BYTES:
        raise ProtocolError(ErrorCode.TOO_LONG, f"{len(line)} bytes, limit {MAX_LINE_BYTES}")
    text = line
    if text.endswith(b"\n"):
        text = text[:-1]
        if text.endswith(b"\r"):
            text = text[:-1]
    if not text.startswith(b"$"):
        raise ProtocolError(ErrorCode.MALFORMED, "line does not start with '$'")
    if not _PRINTABLE.match(text):
        for byte in text:
            if byte < 0x20 or byte > 0x7E:
                raise ProtocolError(ErrorCode.CHARSET, f"byte 0x{byte:02X} is not printable ASCII")
    if text.find(b"$", 1) >= 0:
        raise ProtocolError(ErrorCode.TRUNCATED, "a new line starts inside this one")
    star = text.rfind(b"*")
    if star < 0:
        raise ProtocolError(ErrorCode.TRUNCATED, "no '*' checksum marker")
    body, crc_text = text[1:star], text[star + 1 :]
    if not _HEX4_BYTES.match(crc_text):
        shown = crc_text.decode("ascii")
        if len(shown) < 4 and all(c in "0123456789abcdefABCDEF" for c in shown):
            raise ProtocolError(ErrorCode.TRUNCATED, "checksum is incomplete")
        raise ProtocolError(ErrorCode.MALFORMED, "checksum must be four hexadecimal digits")
    expected = binascii.crc_hqx(body, 0xFFFF)  # crc16(), without a call of our own per line
    if int(crc_text, 16) != expected:
        shown = crc_text.decode("ascii").upper()
        raise ProtocolError(ErrorCode.CHECKSUM, f"got {shown}, computed {expected:04X}")
    return body


def split_body(body: str) -> tuple[str, int, str, dict[str, str]]:
    """(kind, seq, name, fields by key, in line order) of a verified body (the second half of
    :func:`parse_frame`)."""
    tokens = body.split(" ")
    head = tokens[0]
    if len(head) < 1 or head[0] not in KINDS:
        raise ProtocolError(ErrorCode.UNKNOWN_KIND, f"kind {head[:1]!r} is not Q, R or N")
    kind = head[0]
    seq = SEQ_TEXT.get(head[1:])
    if seq is None:
        raise ProtocolError(ErrorCode.BAD_SEQUENCE, f"sequence {head[1:]!r} is not two hex digits")
    if len(tokens) < 2 or not _good(tokens[1], _NAME, _good_names):
        raise ProtocolError(ErrorCode.MALFORMED, "missing or invalid message name").with_frame(
            seq, kind, None
        )
    name = tokens[1]
    fields: dict[str, str] = {}
    good_keys = _good_keys
    try:
        for token in tokens[2:]:
            key, sep, value = token.partition("=")
            if not sep or not (key in good_keys or _good(key, _KEY, good_keys)):
                raise ProtocolError(ErrorCode.MALFORMED, f"field {token[:16]!r} is not key=value")
            if key in fields:
                raise ProtocolError(ErrorCode.DUPLICATE_FIELD, f"{key} appears twice", field=key)
            fields[key] = unquote(value, key) if "%" in value else value
    except ProtocolError as exc:
        raise exc.with_frame(seq, kind, name) from None
    return kind, seq, name, fields


@dataclass(frozen=True, slots=True)
class LineError:
    """A framing problem found while assembling lines from a byte stream."""

    code: ErrorCode
    detail: str
    data: bytes


class LineBuffer:
    """Assembles lines from arbitrary chunks of bytes with bounded memory.

    Bytes before a ``$`` are noise and are dropped; a ``$`` in the middle of a line restarts the
    line (the half line is reported as truncated); a line that grows past :data:`MAX_LINE_BYTES`
    without a terminator is reported once and the rest of it is discarded up to the next
    terminator or ``$``.
    The buffer never holds more than ``MAX_LINE_BYTES`` bytes.
    """

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._max = max_line
        self._buf = bytearray()
        self._in_line = False
        self._discarding = False
        self.noise_bytes = 0

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | LineError]:
        """Returns complete lines (terminator included) and framing errors, in arrival order.

        Works on runs of bytes between the two that matter (``$`` and LF) rather than byte by
        byte: a line arrives whole or in a few pieces, and each is handled in a few steps.
        """
        find, n = data.find, len(data)
        if (  # the usual read: one whole line, nothing before or after it
            not self._in_line
            and not self._discarding
            and n <= self._max
            and data[:1] == b"$"
            and find(b"\n") == n - 1
            and find(b"$", 1) < 0
        ):
            return [bytes(data)]
        out: list[bytes | LineError] = []
        i = 0
        while i < n:
            if self._discarding:  # up to the next LF (consumed) or ``$`` (starts a line)
                nl, start = find(b"\n", i), find(b"$", i)
                if start >= 0 and (nl < 0 or start < nl):
                    i = start
                    self._discarding = False
                elif nl >= 0:
                    i = nl + 1
                    self._discarding = False
                    continue
                else:
                    return out
            if not self._in_line:
                start = find(b"$", i)
                if start < 0:
                    self.noise_bytes += n - i
                    return out
                self.noise_bytes += start - i
                i = start
            if data[i] == START:
                if self._in_line and self._buf:
                    out.append(
                        LineError(
                            ErrorCode.TRUNCATED, "new '$' before terminator", bytes(self._buf)
                        )
                    )
                self._buf = bytearray(b"$")
                self._in_line = True
                i += 1
                continue
            # In a line: take the run up to the next ``$`` or LF, minding the length limit.
            nl, start = find(b"\n", i), find(b"$", i)
            end = min(nl if nl >= 0 else n, start if start >= 0 else n)
            room = self._max - len(self._buf)
            if end - i >= room:
                self._buf += data[i : i + room]
                out.append(
                    LineError(
                        ErrorCode.TOO_LONG,
                        f"no terminator within {self._max} bytes",
                        bytes(self._buf[:32]),
                    )
                )
                self._buf = bytearray()
                self._in_line = False
                self._discarding = True
                i += room
                continue
            self._buf += data[i:end]
            i = end
            if i < n and data[i] == 0x0A:
                self._buf.append(0x0A)
                out.append(bytes(self._buf))
                self._buf = bytearray()
                self._in_line = False
                i += 1
        return out
