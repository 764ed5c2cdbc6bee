"""The probed daemon's figures, read from the benchmark's side (bench/probe.py runs inside it).

A window of the daemon's CPU (:func:`bench.proc.window`) with what the probe recorded in it: the
CPU time of each supervisor pass, safety pass, bench-world physics step and simulated bus
transfer, each thread's share, a profile of every thread if asked, and the split of the whole
into the simulated hardware and the station's own.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from bench.common import percentile
from bench.proc import per_thread, thread_cpu_seconds, window


async def probed_window(
    pid: int, seconds: float, workdir: Path, profile: Path | None
) -> dict[str, Any]:
    """:func:`window`, with the CPU time of the passes within it, each thread's share, and the
    profile of every thread if asked (into the directory ``profile``)."""
    if profile is not None:
        (workdir / "profile").mkdir(exist_ok=True)
        os.kill(pid, signal.SIGUSR2)
    m0 = time.monotonic()
    threads0, t0 = thread_cpu_seconds(pid), time.perf_counter()
    out: dict[str, Any] = dict(await window(pid, seconds))
    threads1, t1 = thread_cpu_seconds(pid), time.perf_counter()
    m1 = time.monotonic()
    stats = workdir / "passes.json"
    stats.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    for _ in range(600):  # written whole (renamed into place), within 30 s (a profile is slow)
        if stats.exists():
            break
        await asyncio.sleep(0.05)
    passes = json.loads(stats.read_text())
    out["threads"] = per_thread(threads0, threads1, passes.pop("threads"), t1 - t0)
    if profile is not None:
        shutil.rmtree(profile, ignore_errors=True)
        shutil.move(workdir / "profile", profile)
    for name, log in passes.items():
        cpu_us = [cpu * 1e6 for at, cpu in log if m0 <= at <= m1]
        if name == "sensors":  # sampled transfers, each weighted (bench/probe.py): a share only
            out["sensors_cpu_pct"] = round(sum(cpu_us) / 1e6 / max(1e-9, m1 - m0) * 100.0, 2)
            continue
        out[f"{name}_passes"] = len(cpu_us)
        out[f"{name}_p50_us"] = percentile(cpu_us, 50)
        out[f"{name}_p99_us"] = percentile(cpu_us, 99)
        out[f"{name}_cpu_pct"] = round(sum(cpu_us) / 1e6 / max(1e-9, m1 - m0) * 100.0, 2)
    out.update(apart(out))
    return out


def apart(w: dict[str, Any]) -> dict[str, float]:
    """The window's CPU split into what stands in for hardware and the station's own: the bench
    world's physics steps (timed on the event loop), the simulated I2C bus's transfers with the
    sensors' register models behind them (timed inside the safety thread's reads) and the pty
    cables' threads are the bench's; a station has real packs, real sensors on a real bus (the
    kernel's I2C driver) and real serial lines there. The adafruit drivers and the station's
    monitors around each transfer are the station's."""
    world = float(w.get("world_cpu_pct", 0.0))
    sensors = float(w.get("sensors_cpu_pct", 0.0))
    cables = float(w["threads"].get("pty-port*", 0.0))
    simulated = world + sensors + cables
    return {
        "simulated_hw_pct": round(simulated, 2),
        "simulated_sensors_pct": round(sensors, 2),
        "station_pct": round(max(0.0, float(w["cpu_pct"]) - simulated), 2),
    }
