"""A simulated PN532 NFC controller at the frame level, behind a simulated I2C bus.

The real adafruit driver (``adafruit_pn532.i2c.PN532_I2C``) talks to it as to the chip (PN532
User Manual §6.2): host frames ``00 00 FF LEN LCS D4 CMD DATA.. DCS 00`` are checked (length and
data checksums); a good frame is answered with an ACK frame ``00 00 FF 00 FF 00``, then the
response frame ``... D5 CMD+1 ...``. Every I2C read starts with the status byte (0x01 when an
answer is ready, §6.2.4) followed by the pending frame; a read longer than the status byte
takes the frame. A frame with a bad checksum is ignored, as the chip does (no ACK). An unknown
command gets the chip's syntax-error frame.

Commands modelled: GetFirmwareVersion, SAMConfiguration, RFConfiguration, PowerDown and
InListPassiveTarget for ISO14443A (106 kbps), which stays pending until a tag is presented.
"""

from __future__ import annotations

import threading

ADDRESS = 0x24
ACK = b"\x00\x00\xff\x00\xff\x00"
SYNTAX_ERROR = b"\x00\x00\xff\x01\xff\x7f\x81\x00"
"""The application-level error frame (§6.2.1.5)."""
HOST_TO_PN532 = 0xD4
PN532_TO_HOST = 0xD5

GET_FIRMWARE_VERSION = 0x02
SAM_CONFIGURATION = 0x14
POWER_DOWN = 0x16
RF_CONFIGURATION = 0x32
IN_LIST_PASSIVE_TARGET = 0x4A
FIRMWARE = bytes([0x32, 0x01, 0x06, 0x07])
"""IC PN532, version 1.6, supports ISO14443A, ISO14443B and ISO18092."""
SENS_RES = b"\x00\x44"
SEL_RES = 0x00
"""ATQA and SAK of a MIFARE Ultralight / NTAG tag (7-byte UID)."""


def frame(data: bytes) -> bytes:
    """A normal information frame around ``data`` (TFI included)."""
    length = len(data)
    return bytes([0x00, 0x00, 0xFF, length, (-length) & 0xFF, *data, (-sum(data)) & 0xFF, 0x00])


class SimPN532:
    """The chip: a host frame in, ACK and response frames out; a tag in its field or not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._out: list[bytes] = []
        self._listening = False
        self._uid: bytes | None = None
        self._taken = False
        """The tag in the field has been reported; it must leave before it is listed again."""
        self.bad_frames = 0
        self.commands: list[int] = []

    # --- the tag --------------------------------------------------------------------------------

    def present(self, uid: bytes) -> None:
        """A tag enters the field (held there until :meth:`remove` or another tag)."""
        if not 4 <= len(uid) <= 10:
            raise ValueError("an ISO14443A UID has 4, 7 or 10 bytes")
        with self._lock:
            self._uid, self._taken = bytes(uid), False
            self._answer_listen()

    def remove(self) -> None:
        with self._lock:
            self._uid, self._taken = None, False

    # --- the bus (hal.sim.i2c.StreamDevice) -----------------------------------------------------

    def i2c_write(self, data: bytes) -> None:
        with self._lock:
            payload = _unframe(data)
            if payload is None:
                self.bad_frames += 1
                return
            if any(f[5:7] == bytes([PN532_TO_HOST, IN_LIST_PASSIVE_TARGET + 1]) for f in self._out):
                self._taken = False  # its answer was never read: the tag is still new
            self._out.clear()  # a new command aborts one still pending (§6.2.3)
            self._listening = False
            self._out.append(ACK)
            self._command(payload)

    def i2c_read(self, length: int) -> bytes:
        with self._lock:
            if not self._out:
                return bytes(length)  # status 0x00: not ready
            if length == 1:
                return b"\x01"
            pending = self._out.pop(0)
            return (b"\x01" + pending + bytes(length)).ljust(length, b"\x00")[:length]

    # --- commands -------------------------------------------------------------------------------

    def _command(self, payload: bytes) -> None:
        if len(payload) < 2 or payload[0] != HOST_TO_PN532:
            self._out.append(SYNTAX_ERROR)
            return
        command, params = payload[1], payload[2:]
        self.commands.append(command)
        if command == GET_FIRMWARE_VERSION:
            self._reply(command, FIRMWARE)
        elif command in (SAM_CONFIGURATION, RF_CONFIGURATION):
            self._reply(command, b"")
        elif command == POWER_DOWN:
            self._reply(command, b"\x00")
        elif command == IN_LIST_PASSIVE_TARGET and len(params) >= 2 and params[1] == 0x00:
            self._listening = True
            self._answer_listen()
        else:
            self._out.append(SYNTAX_ERROR)

    def _answer_listen(self) -> None:
        """While listening with a new tag in the field: the InListPassiveTarget answer."""
        if not self._listening or self._uid is None or self._taken:
            return
        uid = self._uid
        target = bytes([0x01, 0x01, *SENS_RES, SEL_RES, len(uid), *uid])
        self._reply(IN_LIST_PASSIVE_TARGET, target)
        self._listening = False
        self._taken = True

    def _reply(self, command: int, data: bytes) -> None:
        self._out.append(frame(bytes([PN532_TO_HOST, command + 1, *data])))


def _unframe(data: bytes) -> bytes | None:
    """The TFI and data of a host frame, or None when it is not a valid normal frame."""
    start = data.find(b"\x00\xff")
    if start < 0 or len(data) < start + 4:
        return None
    length, lcs = data[start + 2], data[start + 3]
    if (length + lcs) & 0xFF or length == 0:
        return None
    body = data[start + 4 : start + 4 + length]
    if len(body) != length or len(data) < start + 5 + length:
        return None
    if (sum(body) + data[start + 4 + length]) & 0xFF:
        return None
    return body
