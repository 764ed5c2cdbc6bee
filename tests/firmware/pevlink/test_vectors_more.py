"""The 1.1 vectors: byte streams, timed transcripts, vehicle-side vectors and the message table."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from firmware.pevlink import LineBuffer, LineError, decode
from firmware.pevlink.codec import Decoded, describe_messages, message_to_dict
from firmware.pevlink.messages import Telemetry
from firmware.pevlink.timers import I_BREAK_A, N_RETRIES, T_REPLY, T_TEL
from hal.clock import SimClock
from host.vehicle.agent import VehicleAgent
from host.vehicle.catalog import find
from host.vehicle.model import SimVehicle

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[3] / "docs" / "pev-link-vectors.json").read_text("utf-8")
)


def test_the_message_table_in_the_vectors_is_the_codec_s() -> None:
    assert VECTORS["messages"] == json.loads(json.dumps(describe_messages()))


@pytest.mark.parametrize("entry", VECTORS["stream"], ids=lambda e: e["name"])
def test_a_byte_stream_assembles_into_exactly_its_lines_and_errors(entry: dict[str, Any]) -> None:
    buffer = LineBuffer()
    out: list[dict[str, str]] = []
    for chunk in entry["chunks_hex"]:
        for item in buffer.feed(bytes.fromhex(chunk)):
            if isinstance(item, LineError):
                out.append({"error": item.code.wire})
            else:
                out.append({"line": item.decode("ascii")})
    assert out == entry["out"]
    assert buffer.noise_bytes == entry["noise_bytes"]
    assert buffer.buffered == 0


TRANSCRIPTS = {t["name"]: t for t in VECTORS["transcripts"]}


def steps(t: dict[str, Any]) -> list[tuple[float, str, Decoded, bool]]:
    return [
        (s["t"], s["from"], decode(s["line"].encode("ascii")), s.get("lost", False))
        for s in t["steps"]
    ]


@pytest.mark.parametrize("name", sorted(TRANSCRIPTS))
def test_a_transcript_is_a_consistent_conversation(name: str) -> None:
    """One request outstanding per side (until answered or its retries are spent); replies echo."""
    outstanding: dict[str, tuple[int, str, float] | None] = {"vehicle": None, "station": None}
    give_up = (N_RETRIES + 1) * T_REPLY - 0.02
    last_t = 0.0
    for t, side, d, lost in steps(TRANSCRIPTS[name]):
        assert t >= last_t and d.message.SENDER in (side, "either")
        last_t = t
        other = "station" if side == "vehicle" else "vehicle"
        if d.message.NAME == "BOOT":
            outstanding[other] = None  # the peer forgets its own outstanding request
        if d.kind == "Q":
            open_ = outstanding[side]
            if open_ is not None and (open_[0], open_[1]) != (d.seq, d.message.NAME):
                assert t - open_[2] >= give_up, f"{side} has two requests outstanding"
                open_ = None
            outstanding[side] = open_ or (d.seq, d.message.NAME, t)
        elif d.kind == "R" and not lost:
            open_ = outstanding[other]
            assert open_ is not None and (open_[0], open_[1]) == (d.seq, d.message.NAME)
            outstanding[other] = None


@pytest.mark.parametrize("name", [n for n, t in TRANSCRIPTS.items() if "retries" in t["checks"]])
def test_a_retransmission_is_the_identical_line_after_t_reply(name: str) -> None:
    seen: dict[str, tuple[float, str]] = {}
    repeats = 0
    for step in TRANSCRIPTS[name]["steps"]:
        if not step["line"].startswith("$Q"):
            continue
        previous = seen.get(step["from"])
        if previous is not None and previous[1] == step["line"]:
            assert step["t"] - previous[0] == pytest.approx(T_REPLY, abs=0.02)
            repeats += 1
        seen[step["from"]] = (step["t"], step["line"])
    assert repeats >= 1


def _index(items: list[tuple[float, str, Decoded, bool]], name: str, **fields: Any) -> int:
    for i, (_, _, d, _) in enumerate(items):
        values = message_to_dict(d.message)["fields"]
        if name == d.message.NAME and all(values.get(k) == v for k, v in fields.items()):
            return i
    raise AssertionError(f"no {name} {fields}")


@pytest.mark.parametrize(
    "name", [n for n, t in TRANSCRIPTS.items() if "fault-order" in t["checks"]]
)
def test_after_a_fault_come_fault_then_sum_then_power_off_and_no_grant(name: str) -> None:
    items = steps(TRANSCRIPTS[name])
    fault = _index(items, "FAULT", sev="stop")
    assert fault < _index(items, "SUM", reason="fault") < _index(items, "POWER", on=0)
    for _, side, d, _ in items[fault:]:
        if side == "vehicle" and d.message.NAME == "HELLO":
            break
        assert not (side == "station" and d.kind == "Q" and d.message.NAME == "GRANT")
        assert not (d.message.NAME == "POWER" and d.kind == "Q" and d.message.on == 1)  # type: ignore[attr-defined]


def test_telemetry_silence_is_a_fault_after_t_tel() -> None:
    items = steps(TRANSCRIPTS["telemetry-silence"])
    last_tel = max(t for t, _, d, _ in items if d.message.NAME == "TEL")
    fault_t = items[_index(items, "FAULT", code="silent")][0]
    assert fault_t - last_tel >= T_TEL


def test_a_pause_opens_after_the_ramp_and_resumes_with_a_new_grant() -> None:
    items = steps(TRANSCRIPTS["pause-and-resume"])
    zero = _index(items, "GRANT", i=0)
    off = _index(items, "POWER", on=0)
    assert zero < off
    before_off = [d.message for _, _, d, _ in items[:off] if isinstance(d.message, Telemetry)]
    assert before_off[-1].current_a <= I_BREAK_A
    assert off < _index(items, "GRANT", i=4) < _index(items, "POWER", on=1)


def test_after_the_station_boots_the_vehicle_stops_drawing_and_says_hello() -> None:
    items = steps(TRANSCRIPTS["station-boot"])
    boot = _index(items, "BOOT", role="station")
    after = [d.message for _, side, d, _ in items[boot:] if side == "vehicle"]
    assert isinstance(after[0], Telemetry) and after[0].current_a <= I_BREAK_A
    assert any(m.NAME == "HELLO" for m in after)


class MemoryTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    async def read(self, timeout: float) -> bytes:
        await asyncio.sleep(0)
        return b""

    async def write(self, data: bytes) -> None:
        self.written.append(data)


@pytest.mark.parametrize("entry", VECTORS["vehicle"], ids=lambda e: e["name"])
async def test_the_reference_vehicle_answers_as_the_vehicle_vectors_say(
    entry: dict[str, Any],
) -> None:
    transport = MemoryTransport()
    vehicle = SimVehicle(find("ebike-36v-500wh"), soc_pct=40.0)
    agent = VehicleAgent(vehicle, transport, SimClock())
    try:
        for text in entry["receive"]:
            await agent.link.feed(text.encode("ascii"))
            for _ in range(5):
                await asyncio.sleep(0)
    finally:
        await agent.link.aclose()
    replies = [decode(w) for w in transport.written]
    assert len(replies) == len(entry["replies"])
    for got, want in zip(replies, entry["replies"], strict=True):
        assert (got.kind, got.seq, got.message.NAME) == (want["kind"], want["seq"], want["message"])
        fields = message_to_dict(got.message)["fields"]
        assert {k: fields.get(k) for k in want["fields"]} == want["fields"]
