"""Why CRC-16 and not an 8-bit XOR (spec §2.2): every two-bit error in a line is caught."""

from __future__ import annotations

from itertools import combinations

from firmware.pevlink import Telemetry, encode
from firmware.pevlink.framing import crc16


def _xor8(data: bytes) -> int:
    value = 0
    for byte in data:
        value ^= byte
    return value


def _body(line: bytes) -> bytes:
    return line[1 : line.rindex(b"*")]


def _two_bit_errors(body: bytes) -> int:
    return len(body) * 8 * (len(body) * 8 - 1) // 2


def _missed(body: bytes, check: object) -> int:
    good = check(body)  # type: ignore[operator]
    bits = len(body) * 8
    missed = 0
    for a, b in combinations(range(bits), 2):
        damaged = bytearray(body)
        damaged[a // 8] ^= 1 << (a % 8)
        damaged[b // 8] ^= 1 << (b % 8)
        if check(bytes(damaged)) == good:  # type: ignore[operator]
            missed += 1
    return missed


TEL = encode(
    Telemetry(
        soc_pct=57.3,
        voltage_v=39.42,
        current_a=3.98,
        temperature_c=27.5,
        flags=1,
        cell_min_v=3.941,
        cell_max_v=3.952,
        wanted_a=4.0,
    ),
    0x2A,
)


def test_crc16_catches_every_two_bit_error_in_a_telemetry_line() -> None:
    body = _body(TEL)
    assert _two_bit_errors(body) > 100_000
    assert _missed(body, crc16) == 0


def test_an_xor_checksum_would_miss_many_of_them() -> None:
    """The NMEA 0183 / RAPI checksum: two flips of the same bit position cancel out."""
    assert _missed(_body(TEL), _xor8) > 10_000
