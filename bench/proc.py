"""What /proc says of a process: its CPU time, each thread's, its memory; and a free TCP port.

Shared by the benchmarks that run the daemon as a real process (footprint, viewers).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """Each thread's user + system seconds, by its kernel id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[task.name] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def per_thread(
    before: dict[str, float], after: dict[str, float], names: dict[str, str], seconds: float
) -> dict[str, float]:
    """CPU % of a core per thread name (numbered threads of one kind summed: ``pty-port*``)."""
    out: dict[str, float] = {}
    for tid, cpu in after.items():
        name = re.sub(r"\d+$", "*", names.get(tid, "unnamed"))
        out[name] = out.get(name, 0.0) + (cpu - before.get(tid, 0.0)) / seconds * 100.0
    return dict(sorted(out.items(), key=lambda item: -item[1]))


def memory_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


async def window(pid: int, seconds: float) -> dict[str, float]:
    """CPU share of one core and memory of ``pid`` over ``seconds`` of real time."""
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu1, t1 = cpu_seconds(pid), time.perf_counter()
    memory = memory_kb(pid)
    return {
        "cpu_pct": (cpu1 - cpu0) / (t1 - t0) * 100.0,
        "rss_mb": memory["VmRSS"] / 1024,
        "peak_rss_mb": memory["VmHWM"] / 1024,
    }
