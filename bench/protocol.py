"""Protocol throughput: PEV Link lines decoded and validated per second on one core.

The corpus is what a busy link carries: mostly telemetry, then heartbeats, station states and
grant exchanges, and the handshake now and then, encoded by the codec itself. Decoding is the
whole receive path of :class:`~firmware.pevlink.link.Link`: the bounded line buffer splits the byte
stream, then :func:`~firmware.pevlink.codec.decode` checks the checksum, parses every field and
validates each value against the message table.
"""

from __future__ import annotations

import random
import time
from typing import Any

from bench.common import table
from firmware.pevlink import (
    Battery,
    ChargeRequest,
    Grant,
    GrantReply,
    Heartbeat,
    Hello,
    LineBuffer,
    Message,
    StationState,
    Telemetry,
    decode,
    encode,
)


def corpus(count: int, seed: int = 8) -> list[bytes]:
    rng = random.Random(seed)
    lines: list[bytes] = []
    for n in range(count):
        roll = rng.random()
        message: Message
        if roll < 0.60:
            message = Telemetry(
                soc_pct=round(rng.uniform(0, 100), 1),
                voltage_v=round(rng.uniform(30, 58), 2),
                current_a=round(rng.uniform(0, 5), 2),
                temperature_c=round(rng.uniform(10, 40), 1),
                flags=rng.choice([0x0001, 0x0101, 0x0000]),
                cell_min_v=round(rng.uniform(3.5, 4.1), 3),
                cell_max_v=round(rng.uniform(3.5, 4.2), 3),
                wanted_a=round(rng.uniform(0, 5), 2),
            )
        elif roll < 0.75:
            message = Heartbeat()
        elif roll < 0.85:
            message = StationState("charging", "Sharing the station's power")
        elif roll < 0.92:
            message = Grant(round(rng.uniform(0.5, 5), 2), 42.0, "shared")
        elif roll < 0.96:
            message = GrantReply(round(rng.uniform(0.5, 5), 2))
        elif roll < 0.98:
            message = Hello((1,), "ebike", "Bosch class", "36 V e-bike", f"SN{n:06d}", "sim-1")
        elif roll < 0.99:
            message = Battery(
                chemistry="NMC",
                cells_series=10,
                v_nom_v=36.0,
                v_max_v=42.0,
                v_min_v=30.0,
                capacity_wh=500.0,
                i_max_a=4.0,
                i_min_a=0.5,
                t_min_c=0.0,
                t_max_c=40.0,
                soc_pct=40.0,
                temperature_c=25.0,
            )
        else:
            message = ChargeRequest(4.0, 42.0)
        lines.append(encode(message, n % 255 + 1))
    return lines


def measure(lines: list[bytes], rounds: int) -> dict[str, float]:
    stream = b"".join(lines)
    chunks = [stream[i : i + 64] for i in range(0, len(stream), 64)]  # UART-sized reads
    best_decode = best_split = float("inf")
    decoded = 0
    for _ in range(rounds):
        buffer = LineBuffer()
        started = time.perf_counter()
        split = [item for chunk in chunks for item in buffer.feed(chunk)]
        after_split = time.perf_counter()
        decoded = 0
        for item in split:
            if isinstance(item, bytes):
                decode(item)
                decoded += 1
        finished = time.perf_counter()
        best_split = min(best_split, after_split - started)
        best_decode = min(best_decode, finished - started)
    assert decoded == len(lines)
    messages = [decode(line) for line in lines]
    started = time.perf_counter()
    for message in messages:
        encode(message.message, message.seq)
    encode_s = time.perf_counter() - started
    return {
        "lines": len(lines),
        "bytes": len(stream),
        "mean_line_bytes": len(stream) / len(lines),
        "decode_lines_per_s": len(lines) / best_decode,
        "split_only_lines_per_s": len(lines) / best_split,
        "encode_lines_per_s": len(lines) / encode_s,
        "decode_mb_per_s": len(stream) / best_decode / 1e6,
        "wire_lines_per_s_115200": 115200 / 10 / (len(stream) / len(lines)),
    }


def run(smoke: bool = False) -> dict[str, Any]:
    count, rounds = (2_000, 1) if smoke else (30_000, 3)
    figures = measure(corpus(count), rounds)
    per_link = figures["wire_lines_per_s_115200"]
    print(
        table(
            ["what", "lines/s", "note"],
            [
                ["decode + validate", figures["decode_lines_per_s"], "buffer split included"],
                ["split lines only", figures["split_only_lines_per_s"], "LineBuffer.feed"],
                ["encode", figures["encode_lines_per_s"], "validate + CRC + format"],
                ["one saturated link", per_link, "115200 baud, 8N1"],
            ],
        )
    )
    print(
        f"{figures['lines']} lines, {figures['mean_line_bytes']:.0f} bytes on average; one core "
        f"decodes what {figures['decode_lines_per_s'] / per_link:.0f} saturated 115200-baud links "
        f"carry ({figures['decode_mb_per_s']:.2f} MB/s)"
    )
    return figures
