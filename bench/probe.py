"""The bench daemon with the benchmark's instruments: CPU time per pass, threads, and a profile.

    python bench/probe.py STATS.json [PROFILE_DIR] -- run --sim --ports 8 ...

Runs ``firmware.cli`` (from the first entry of ``PYTHONPATH`` when given, so an older checkout
can be measured with the same instruments) after wrapping ``Supervisor.pass_once`` and
``SafetyCore.pass_once`` so that each pass records ``(time.monotonic(), thread CPU seconds)``:
``time.thread_time()`` around the pass, in the thread that runs it (the event loop's for the
supervisor, the safety loop's own for the core). Neither pass waits on anything but the sensor
reads, so the figure is the pass's own work. ``BenchWorld.step`` (one physics step of the bench's
simulated electrical world, on the event loop) is timed the same way, and so is one transfer in
16 on the simulated I2C bus (``SimI2C``: the register models a Pi has as real parts). On ``SIGUSR1``
the passes are written out, with the name of every thread by its kernel id (the benchmark reads
each thread's CPU time from /proc).
On ``SIGUSR2`` a profile of every thread starts (yappi, on CPU time: cProfile sees only the
thread that enables it); the next ``SIGUSR1`` writes one pstats file per thread into
PROFILE_DIR (``<thread>.prof``) and ``threads.json`` (each thread's profiled CPU seconds). The
product has no such hook: this file is the bench's.
"""

from __future__ import annotations

import collections
import functools
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

if __name__ == "__main__" and sys.path and sys.path[0] == str(Path(__file__).resolve().parent):
    del sys.path[0]  # bench/ is not a package root: take firmware from PYTHONPATH or the install

PASSES_KEPT = 20_000
TRANSFERS_KEPT = 20_000
"""Timed bus transfers kept: the 8-port bench makes about 2,100 a second, one in 16 timed."""
TRANSFER_SAMPLE = 16

Pass = Callable[[Any], Coroutine[Any, Any, None]]


def timed(original: Pass, log: collections.deque[tuple[float, float]]) -> Pass:
    """``original``, timed in its own thread."""

    @functools.wraps(original)
    async def wrapper(self: Any) -> None:
        started = time.thread_time()
        try:
            await original(self)
        finally:
            log.append((time.monotonic(), time.thread_time() - started))

    return wrapper


def timed_step(
    original: Callable[[Any, float], None], log: collections.deque[tuple[float, float]]
) -> Callable[[Any, float], None]:
    """A synchronous ``original``, timed in its own thread."""

    @functools.wraps(original)
    def wrapper(self: Any, dt_s: float) -> None:
        started = time.thread_time()
        try:
            original(self, dt_s)
        finally:
            log.append((time.monotonic(), time.thread_time() - started))

    return wrapper


class TransferTimer:
    """Times the simulated bus's transfers (the register models behind them) in their thread.

    One transfer in :data:`TRANSFER_SAMPLE` is timed and logged with that weight: two clock
    readings per transfer cost about as much as a register model's answer, and would be counted
    in the station's share. A transfer made inside another (a write-then-read falling back to
    its two halves) belongs to the outer one, whichever of the wrapped methods it is.
    """

    def __init__(self, log: collections.deque[tuple[float, float]]) -> None:
        self.log = log
        self._inside = threading.local()
        self._count = 0

    def wrap(self, original: Callable[..., None]) -> Callable[..., None]:
        inside = self._inside

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> None:
            if getattr(inside, "busy", False):
                original(*args, **kwargs)  # a half of the transfer being timed (or not)
                return
            self._count += 1
            if self._count % TRANSFER_SAMPLE:
                inside.busy = True
                try:
                    original(*args, **kwargs)
                finally:
                    inside.busy = False
                return
            inside.busy = True
            started = time.thread_time()
            try:
                original(*args, **kwargs)
            finally:
                inside.busy = False
                spent = (time.thread_time() - started) * TRANSFER_SAMPLE
                self.log.append((time.monotonic(), spent))

        return wrapper


def thread_names() -> dict[str, str]:
    """Every live thread's name by its kernel id (``/proc/PID/task/<id>``)."""
    return {str(t.native_id): t.name for t in threading.enumerate() if t.native_id is not None}


class Profiler:
    """yappi over every thread, on CPU time; each thread's stats written as pstats."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.running = False

    def start(self) -> None:
        import yappi  # the bench's own dependency (the dev extra), imported only when asked

        if not self.running:
            yappi.clear_stats()
            yappi.set_clock_type("cpu")
            yappi.start(builtins=False, profile_threads=True)
            self.running = True

    def write(self) -> None:
        import yappi

        if not self.running:
            return
        yappi.stop()
        self.running = False
        totals: dict[str, float] = {}
        names = {t.ident: t.name for t in threading.enumerate()}
        for thread in yappi.get_thread_stats():
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", names.get(thread.tid, f"thread-{thread.tid}"))
            stats = yappi.get_func_stats(filter={"ctx_id": thread.id})
            if stats.empty():
                continue
            stats.save(str(self.directory / f"{name}.prof"), type="pstat")
            totals[name] = thread.ttot
        (self.directory / "threads.json").write_text(json.dumps(totals, indent=1))
        yappi.clear_stats()


def main(argv: list[str]) -> int:
    split = argv.index("--")
    stats_path = Path(argv[0])
    profiler = Profiler(Path(argv[1])) if split > 1 else None
    from firmware import cli
    from firmware.station.safety_core import SafetyCore
    from firmware.station.supervisor import Supervisor
    from hal.sim.i2c import SimI2C
    from hal.sim.world import BenchWorld

    passes: dict[str, collections.deque[tuple[float, float]]] = {
        "supervisor": collections.deque(maxlen=PASSES_KEPT),
        "safety": collections.deque(maxlen=PASSES_KEPT),
        "world": collections.deque(maxlen=PASSES_KEPT),
        "sensors": collections.deque(maxlen=TRANSFERS_KEPT),
    }
    transfers = TransferTimer(passes["sensors"])
    for name in ("writeto", "readfrom_into", "writeto_then_readfrom"):
        setattr(SimI2C, name, transfers.wrap(getattr(SimI2C, name)))
    setattr(BenchWorld, "step", timed_step(BenchWorld.step, passes["world"]))  # noqa: B010
    setattr(Supervisor, "pass_once", timed(Supervisor.pass_once, passes["supervisor"]))  # noqa: B010
    setattr(SafetyCore, "pass_once", timed(SafetyCore.pass_once, passes["safety"]))  # noqa: B010

    def start_profile(signum: int, frame: object) -> None:
        if profiler is not None:
            profiler.start()

    def write(signum: int, frame: object) -> None:
        if profiler is not None:
            profiler.write()
        data: dict[str, Any] = {name: list(log) for name, log in passes.items()}
        data["threads"] = thread_names()
        partial = stats_path.with_suffix(".part")
        partial.write_text(json.dumps(data))
        partial.replace(stats_path)  # the bench sees the whole file or none

    signal.signal(signal.SIGUSR2, start_profile)
    signal.signal(signal.SIGUSR1, write)
    return cli.main(argv[split + 1 :])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
