"""What one PEV Link line costs: ``python bench/line.py [--in-situ]`` (docs/benchmarks.md, 6).

Per line, CPU time of one process (``time.process_time``), best of nine rounds of 2,000 lines: a TEL
built as the vehicle agent builds it, encoded, split from the stream by a ``LineBuffer`` and
decoded, once with a body the codec has not seen before (what it remembers is forgotten before each
line) and once with the same numbers as the last TEL; and a heartbeat. ``--in-situ`` runs the busy
slice of the fast scenario runner (``bench/scenario-busy.toml``, 600 s at 1000 W) with timers around
``encode``, ``decode`` and the station's handling of each TEL. Only the public codec is used, so
the same file measures an older checkout (``PYTHONPATH=that/checkout python bench/line.py``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import firmware.pevlink.codec as codec
from firmware.pevlink import Heartbeat, LineBuffer, Telemetry, decode, encode

NUMBERS = (26.2, 57.31, 2.09, 27.7, 1, 3.816, 3.826, 3.5)
"""A charging e-scooter's TEL: soc, v, i, temp, flags, cmin, cmax, ireq."""


def per_line() -> dict[str, float]:
    buffer = LineBuffer()
    last: list[Any] = [None, ()]

    def forget() -> None:
        for name in ("_recent", "_encoded"):
            getattr(codec, name, {}).clear()

    def new_body(seq: int) -> None:
        forget()
        for item in buffer.feed(encode(Telemetry(*NUMBERS), seq)):
            assert isinstance(item, bytes)
            decode(item)

    def same_numbers(seq: int) -> None:  # as the agent does: the same message while they hold
        if last[0] is None or last[1] != NUMBERS:
            last[0], last[1] = Telemetry(*NUMBERS), NUMBERS
        for item in buffer.feed(encode(last[0], seq)):
            assert isinstance(item, bytes)
            decode(item)

    def heartbeat(seq: int) -> None:
        for item in buffer.feed(encode(Heartbeat(), seq)):
            assert isinstance(item, bytes)
            decode(item)

    rows: dict[str, Callable[[int], None]] = {
        "TEL, a body not seen before": new_body,
        "TEL, the same numbers as the last": same_numbers,
        "HB": heartbeat,
    }
    best = dict.fromkeys(rows, float("inf"))
    for _ in range(9):
        for label, run in rows.items():
            started = time.process_time()
            for n in range(2000):
                run(n % 255 + 1)
            best[label] = min(best[label], (time.process_time() - started) / 2000 * 1e6)
    return best


def in_situ() -> dict[str, tuple[int, float]]:
    from dataclasses import replace

    import firmware.pevlink.link as link
    from firmware.station.conversation import Conversation
    from host.scenario.fast import run_fast_scenario
    from host.scenario.spec import load_scenario

    spent: dict[str, list[float]] = {}
    clock = time.perf_counter

    def timed(label: str, inner: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            started = clock()
            try:
                return inner(*args)
            finally:
                spent.setdefault(label, []).append(clock() - started)

        return run

    for name in ("encode", "decode"):  # as the link calls them
        setattr(link, name, timed(name, getattr(link, name)))
    handle = Conversation.on_notice

    async def on_notice(self: Conversation, message: Any) -> None:
        if not isinstance(message, Telemetry):
            return await handle(self, message)
        started = clock()
        try:
            return await handle(self, message)  # nothing in it awaits: its CPU time alone
        finally:
            spent.setdefault("station's handling of a TEL", []).append(clock() - started)

    Conversation.on_notice = on_notice  # type: ignore[method-assign]
    scenario = replace(load_scenario("bench/scenario-busy.toml"), end_s=600, budget_w=1000)
    result = run_fast_scenario(scenario)
    print(f"energy {sum(v.energy_in_wh for v in result.vehicles):.4f} Wh")
    return {label: (len(times), sum(times) / len(times) * 1e6) for label, times in spent.items()}


if __name__ == "__main__":
    if "--in-situ" in sys.argv:
        for label, (calls, each) in in_situ().items():
            print(f"{label:36s} {calls:6d} calls {each:6.1f} us each")
    else:
        for label, each in per_line().items():
            print(f"{label:36s} {each:6.1f} us")
