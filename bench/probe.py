"""The bench daemon with the benchmark's instruments: CPU time per pass, and a profile on demand.

    python bench/probe.py STATS.json [PROFILE.prof] -- run --sim --ports 8 ...

Runs ``firmware.cli`` (from the first entry of ``PYTHONPATH`` when given, so an older checkout
can be measured with the same instruments) after wrapping ``Supervisor.pass_once`` and
``SafetyCore.pass_once`` so that each pass records ``(time.monotonic(), thread CPU seconds)``:
``time.thread_time()`` around the pass, in the thread that runs it (the event loop's for the
supervisor, the safety loop's own for the core). Neither pass waits on anything but the sensor
reads, so the figure is the pass's own work. On ``SIGUSR2`` the event loop's thread starts a
cProfile; on ``SIGUSR1`` the passes (and the profile, if one runs) are written out. The product
has no such hook: this file is the bench's.
"""

from __future__ import annotations

import collections
import cProfile
import functools
import json
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

if __name__ == "__main__" and sys.path and sys.path[0] == str(Path(__file__).resolve().parent):
    del sys.path[0]  # bench/ is not a package root: take firmware from PYTHONPATH or the install

PASSES_KEPT = 20_000

Pass = Callable[[Any], Coroutine[Any, Any, None]]


def timed(
    original: Pass, log: collections.deque[tuple[float, float]], profiles: list[cProfile.Profile]
) -> Pass:
    """``original``, timed; profiled too while ``profiles`` holds a profiler (in the pass's own
    thread: cProfile sees only the thread that enables it)."""

    @functools.wraps(original)
    async def wrapper(self: Any) -> None:
        profile = next(iter(profiles), None)  # another thread may empty it meanwhile
        if profile is not None:
            profile.enable()
        started = time.thread_time()
        try:
            await original(self)
        finally:
            log.append((time.monotonic(), time.thread_time() - started))
            if profile is not None:
                profile.disable()

    return wrapper


def main(argv: list[str]) -> int:
    split = argv.index("--")
    stats_path = Path(argv[0])
    profile_path = Path(argv[1]) if split > 1 else None
    from firmware import cli
    from firmware.station.safety_core import SafetyCore
    from firmware.station.supervisor import Supervisor

    passes: dict[str, collections.deque[tuple[float, float]]] = {
        "supervisor": collections.deque(maxlen=PASSES_KEPT),
        "safety": collections.deque(maxlen=PASSES_KEPT),
    }
    profiler: list[cProfile.Profile] = []
    safety_profiler: list[cProfile.Profile] = []
    setattr(Supervisor, "pass_once", timed(Supervisor.pass_once, passes["supervisor"], []))  # noqa: B010
    setattr(SafetyCore, "pass_once", timed(SafetyCore.pass_once, passes["safety"], safety_profiler))  # noqa: B010

    def start_profile(signum: int, frame: object) -> None:
        if profile_path is not None and not profiler:
            profiler.append(cProfile.Profile())
            profiler[0].enable()
            safety_profiler.append(cProfile.Profile())

    def write(signum: int, frame: object) -> None:
        if profiler and profile_path is not None:
            profiler[0].disable()
            profiler[0].dump_stats(str(profile_path))
            profiler.clear()
            safety = safety_profiler.pop()
            time.sleep(0.2)  # a safety pass under way finishes with its profiler
            safety.dump_stats(str(profile_path.with_suffix(".safety.prof")))
        data = {name: list(log) for name, log in passes.items()}
        partial = stats_path.with_suffix(".part")
        partial.write_text(json.dumps(data))
        partial.replace(stats_path)  # the bench sees the whole file or none

    signal.signal(signal.SIGUSR2, start_profile)
    signal.signal(signal.SIGUSR1, write)
    return cli.main(argv[split + 1 :])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
