"""Viewers: API latency, daemon CPU and memory, and watchdog kick gaps with many live viewers.

A real bench daemon (``pev-charger run --sim --ports 8``, real time) with a vehicle charging on
every port; N clients hold ``/api/events`` open and read everything (their own process,
bench/viewer_client.py); meanwhile ``GET /api/station`` is asked 50 times a second and timed.
The daemon's CPU is its own user + system time over the window as a share of one core, and
"waiting for a CPU" the time its event loop's thread was ready but not running (from
/proc/PID/schedstat: on a shared machine, the part of the latency that is not the daemon's); its
memory is VmRSS at the end. Kick gaps come from the bench's watchdog log
(``GET /api/sim/watchdog``, host/bench/kicks.py): the longest gap between two kicks in the
window, and how many outlasted the reference board's 100 ms hold or half of it (the daemon's
environment passes through, so ``PEV_SIM_WATCHDOG_HOLD_S=2`` lets a crowded machine keep the
ports charging while the gaps are still counted against 100 ms). ``PEV_BENCH_DAEMON_ROOT``
runs the daemon from another checkout (to compare with an older version).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import ROOT, percentile, python, rounded, table
from bench.footprint import MODELS, charge_all, start_bench_daemon, stop, wait_http
from bench.proc import cpu_seconds, free_port, memory_kb

REQUESTS_PER_S = 50.0


def run_queue_s(pid: int) -> float:
    """Seconds the daemon's main thread (its event loop) has spent ready to run but waiting for
    a CPU: how much of its latency is the machine's, not its own."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


def daemon_root() -> Path:
    return Path(os.environ.get("PEV_BENCH_DAEMON_ROOT") or ROOT)


def supports_caps(root: Path) -> bool:
    out = subprocess.run(
        [python(), "-m", "firmware.cli", "run", "--help"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return "--max-streams" in out


async def api_load(
    session: aiohttp.ClientSession, url: str, seconds: float, latencies: list[float]
) -> int:
    """GET ``url`` at a steady rate (not back to back); returns how many failed."""
    failed = 0
    period = 1.0 / REQUESTS_PER_S
    start = time.perf_counter()
    pending: set[asyncio.Task[None]] = set()

    async def one() -> None:
        nonlocal failed
        began = time.perf_counter()
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as response:
                await response.read()
                if response.status != 200:
                    failed += 1
                    return
        except (aiohttp.ClientError, TimeoutError, OSError):
            failed += 1
            return
        latencies.append((time.perf_counter() - began) * 1000.0)

    n = 0
    while time.perf_counter() - start < seconds:
        task = asyncio.create_task(one())
        pending.add(task)
        task.add_done_callback(pending.discard)
        n += 1
        await asyncio.sleep(max(0.0, start + n * period - time.perf_counter()))
    if pending:
        await asyncio.wait(pending, timeout=15)
    return failed


async def kicks(session: aiohttp.ClientSession, base: str, reset: bool = False) -> Any:
    method = session.post if reset else session.get
    path = "/api/sim/watchdog/reset" if reset else "/api/sim/watchdog"
    async with method(base + path) as response:
        return await response.json() if response.status == 200 else None


async def level(
    session: aiohttp.ClientSession, base: str, pid: int, viewers: int, seconds: float
) -> dict[str, Any]:
    client = None
    out: dict[str, Any] = {"viewers": viewers, "connected": 0, "refused": 0}
    try:
        if viewers:
            client = await asyncio.create_subprocess_exec(
                python(),
                "-m",
                "bench.viewer_client",
                "127.0.0.1",
                base.rsplit(":", 1)[1],
                str(viewers),
                cwd=str(ROOT),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            assert client.stdout is not None
            line = (await asyncio.wait_for(client.stdout.readline(), 180.0)).split()
            out["connected"], out["refused"] = int(line[1]), int(line[2]) + int(line[3])
        await asyncio.sleep(1.0)
        await kicks(session, base, reset=True)
        latencies: list[float] = []
        cpu0, wait0, t0 = cpu_seconds(pid), run_queue_s(pid), time.perf_counter()
        out["api_failed"] = await api_load(session, f"{base}/api/station", seconds, latencies)
        cpu1, wait1, t1 = cpu_seconds(pid), run_queue_s(pid), time.perf_counter()
        watchdog = await kicks(session, base)
        out.update(
            api_p50_ms=percentile(latencies, 50),
            api_p99_ms=percentile(latencies, 99),
            api_max_ms=max(latencies, default=float("nan")),
            cpu_pct=(cpu1 - cpu0) / (t1 - t0) * 100.0,
            run_queue_pct=(wait1 - wait0) / (t1 - t0) * 100.0,
            rss_mb=memory_kb(pid)["VmRSS"] / 1024,
            window_s=round(t1 - t0, 1),
        )
        if watchdog is not None:
            out.update(
                kick_gap_max_ms=watchdog["longest_gap_s"] * 1000.0,
                gaps_over_hold=watchdog["gaps_over_hold"],
                gaps_over_half_hold=watchdog["gaps_over_half_hold"],
                gaps_over_100ms=watchdog.get("gaps_over_100ms"),
                gaps_over_50ms=watchdog.get("gaps_over_50ms"),
                hold_ms=watchdog["hold_s"] * 1000.0,
            )
        async with session.get(f"{base}/api/station") as response:
            station = await response.json()
        out["ports_charging"] = sum(1 for p in station["ports"] if p["state"] == "charging")
        out["faults"] = sum(1 for p in station["ports"] if p["state"] == "fault")
    finally:
        if client is not None:
            assert client.stdin is not None and client.stdout is not None
            client.stdin.close()
            try:
                done = (await asyncio.wait_for(client.stdout.readline(), 20.0)).split()
                if done and done[0] == b"done":
                    out["events_per_s"] = int(done[1]) / max(1.0, out.get("window_s", 1.0))
            except TimeoutError:
                pass
            await stop(client)
    return out


async def measure(levels: tuple[int, ...], seconds: float) -> list[dict[str, Any]]:
    root = daemon_root()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    most = max(levels)
    caps = ["--max-streams", str(most + 100), "--max-requests", str(most + 400)]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pev-viewers-") as tmp:
        process = await start_bench_daemon(
            port,
            Path(tmp) / "records.db",
            *(caps if supports_caps(root) else []),
            root=root,
        )
        try:
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                await wait_http(session, f"{base}/api/station", process)
                await charge_all(session, base, len(MODELS))
                await asyncio.sleep(2.0)
                for viewers in levels:
                    results.append(await level(session, base, process.pid, viewers, seconds))
                    print(json.dumps({"level": rounded(results[-1])}), flush=True)
        finally:
            await stop(process)
    return results


def run(smoke: bool = False) -> dict[str, Any]:
    levels, seconds = ((0, 20), 2.0) if smoke else ((0, 200, 1000, 2000), 30.0)
    results = asyncio.run(measure(levels, seconds))
    print(
        table(
            [
                "viewers",
                "streaming",
                "API p50 ms",
                "API p99 ms",
                "daemon CPU %",
                "waiting for a CPU %",
                "RSS MB",
                "longest kick gap ms",
                "gaps > 100 ms",
                "gaps > 50 ms",
                "charging",
            ],
            [
                [
                    r["viewers"],
                    r["connected"],
                    r["api_p50_ms"],
                    r["api_p99_ms"],
                    r["cpu_pct"],
                    r["run_queue_pct"],
                    r["rss_mb"],
                    r.get("kick_gap_max_ms"),
                    r.get("gaps_over_100ms", r.get("gaps_over_hold")),
                    r.get("gaps_over_50ms", r.get("gaps_over_half_hold")),
                    r["ports_charging"],
                ]
                for r in results
            ],
        )
    )
    print(
        f"{seconds:g} s windows, {REQUESTS_PER_S:g} GET /api/station per second; "
        f"daemon from {daemon_root()}; bench watchdog hold "
        f"{os.environ.get('PEV_SIM_WATCHDOG_HOLD_S', 'as configured')}"
    )
    return {"levels": results, "window_s": seconds, "requests_per_s": REQUESTS_PER_S}
