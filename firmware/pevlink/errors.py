"""The one table of PEV Link error codes, and the codec's one exception.

Link-layer errors (1xx) mean the line cannot be trusted at all: the receiver drops it without a
reply and the sender's retry timer recovers. Application errors (2xx) arrive in a well-formed
line: the receiver answers a request with ``NAK code=2xx`` naming the field and, where it can,
the value it would accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ErrorCode(IntEnum):
    MALFORMED = 100
    CHECKSUM = 101
    TOO_LONG = 102
    TRUNCATED = 103
    CHARSET = 104
    BAD_SEQUENCE = 105
    UNKNOWN_KIND = 106
    UNKNOWN_MESSAGE = 200
    MISSING_FIELD = 201
    OUT_OF_RANGE = 202
    WRONG_TYPE = 203
    DUPLICATE_FIELD = 204
    UNKNOWN_VALUE = 205
    INCONSISTENT = 206
    UNSUPPORTED_VERSION = 207
    WRONG_STATE = 208
    BUSY = 209
    NOT_SUPPORTED = 210

    @property
    def wire(self) -> str:
        """How the code is written on the wire: ``E`` and three digits."""
        return f"E{self.value:03d}"

    @property
    def is_link_error(self) -> bool:
        return self.value < 200


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    summary: str
    meaning: str


ERRORS: dict[ErrorCode, ErrorInfo] = {
    ErrorCode.MALFORMED: ErrorInfo(
        "malformed line", "The line does not follow the framing grammar ($, kind, sequence, name)."
    ),
    ErrorCode.CHECKSUM: ErrorInfo(
        "bad checksum", "The CRC-16 after '*' does not match the characters it covers."
    ),
    ErrorCode.TOO_LONG: ErrorInfo(
        "line too long", "More than the maximum line length arrived without a terminator."
    ),
    ErrorCode.TRUNCATED: ErrorInfo(
        "truncated line", "The line ended (or a new '$' began) before its checksum was complete."
    ),
    ErrorCode.CHARSET: ErrorInfo(
        "invalid character", "A byte outside printable ASCII (0x20-0x7E) appeared in the line."
    ),
    ErrorCode.BAD_SEQUENCE: ErrorInfo(
        "bad sequence number", "The sequence number is not two hexadecimal digits."
    ),
    ErrorCode.UNKNOWN_KIND: ErrorInfo(
        "unknown kind", "The kind letter is not Q (request), R (reply) or N (notice)."
    ),
    ErrorCode.UNKNOWN_MESSAGE: ErrorInfo(
        "unknown message", "The message name is not defined for this kind in this version."
    ),
    ErrorCode.MISSING_FIELD: ErrorInfo("missing field", "A required field is absent."),
    ErrorCode.OUT_OF_RANGE: ErrorInfo(
        "value out of range", "A numeric field lies outside its allowed range."
    ),
    ErrorCode.WRONG_TYPE: ErrorInfo(
        "wrong type", "A field's value does not parse as the field's type."
    ),
    ErrorCode.DUPLICATE_FIELD: ErrorInfo("duplicate field", "A field appears more than once."),
    ErrorCode.UNKNOWN_VALUE: ErrorInfo(
        "unknown value", "An enumerated field holds a word that is not defined."
    ),
    ErrorCode.INCONSISTENT: ErrorInfo(
        "inconsistent fields", "Fields contradict each other (for example vmin above vmax)."
    ),
    ErrorCode.UNSUPPORTED_VERSION: ErrorInfo(
        "unsupported version", "No protocol version in common; 'accept' lists the receiver's."
    ),
    ErrorCode.WRONG_STATE: ErrorInfo(
        "wrong state", "The message is valid but not allowed in the receiver's current state."
    ),
    ErrorCode.BUSY: ErrorInfo(
        "busy", "The receiver cannot take the request now; retry after the reply timer."
    ),
    ErrorCode.NOT_SUPPORTED: ErrorInfo(
        "not supported",
        "The request is valid but this receiver cannot serve it (for example a pack voltage above "
        "what the port can supply or measure); 'accept' gives the limit.",
    ),
}


class PevLinkError(Exception):
    """Base of every error raised by the PEV Link package."""


class ProtocolError(PevLinkError, ValueError):
    """A line or message that breaks the spec. Carries the spec's error code.

    ``seq`` and ``kind`` are set when the line was framed well enough to know them, so that a
    request can be answered with a NAK echoing its sequence number.
    """

    def __init__(
        self,
        code: ErrorCode,
        detail: str = "",
        *,
        field: str | None = None,
        accept: str | None = None,
        seq: int | None = None,
        kind: str | None = None,
        name: str | None = None,
    ) -> None:
        self.code = code
        self.detail = detail or ERRORS[code].summary
        self.field = field
        self.accept = accept
        self.seq = seq
        self.kind = kind
        self.name = name
        super().__init__(f"{code.wire} {ERRORS[code].summary}: {self.detail}")

    def with_frame(self, seq: int, kind: str, name: str | None) -> ProtocolError:
        self.seq, self.kind, self.name = seq, kind, name
        return self


class NakError(PevLinkError):
    """The peer answered a request with NAK."""

    def __init__(self, code: str, field: str | None, accept: str | None, text: str | None) -> None:
        self.code = code
        self.field = field
        self.accept = accept
        self.text = text
        parts = [f"peer refused with {code}"]
        if field:
            parts.append(f"field {field}")
        if accept:
            parts.append(f"would accept {accept}")
        if text:
            parts.append(text)
        super().__init__(
            ": ".join(parts[:1]) + (" (" + ", ".join(parts[1:]) + ")" if parts[1:] else "")
        )


class LinkTimeout(PevLinkError, TimeoutError):
    """No reply after every retry: the link is considered lost."""


class PeerRebooted(PevLinkError):
    """The peer announced a restart (BOOT) while a request was outstanding."""


class RequestAbandoned(PevLinkError):
    """This side gave up an outstanding request (its port tripped): it is not retried."""
