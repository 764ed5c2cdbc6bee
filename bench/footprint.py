"""Footprint: the daemon's memory and idle CPU with 8 charging ports, and with 200 SSE clients.

Real processes: ``pev-charger run --sim --ports 8`` (the bench daemon at real speed, simulated
hardware and vehicles, its SQLite records in a temporary directory) with a vehicle charging on
every port, started through the HTTP API; then the same with 200 clients holding
``/api/events`` open and reading every event; next to a bare aiohttp process serving one route,
the least any Python web process costs. CPU is the process's own user + system time over the
window (all its threads), as a share of one core; memory is its resident set (VmRSS) and its
peak (VmHWM), from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import ROOT, python, table

MODELS = {
    1: "ebike-36v-500wh",
    2: "scooter-ninebot-max",
    3: "kids-scooter-24v",
    4: "eunicycle-84v",
    5: "onewheel-xr",
    6: "ebike-48v-13s",
    7: "kids-scooter-24v",
    8: "ebike-52v-14s",
}
BARE_APP = """
from aiohttp import web
import sys
async def hello(request):
    return web.Response(text="ok")
app = web.Application()
app.router.add_get("/", hello)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


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


async def wait_http(session: aiohttp.ClientSession, url: str, process: Any) -> None:
    deadline = time.perf_counter() + 30.0
    while time.perf_counter() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"the process exited with status {process.returncode}")
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with session.get(url) as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within 30 s")


async def stop(process: Any) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10.0)
        except TimeoutError:
            process.kill()
            await process.wait()


async def bare_aiohttp(seconds: float) -> dict[str, float]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        python(), "-c", BARE_APP, str(port), cwd=str(ROOT)
    )
    try:
        async with aiohttp.ClientSession() as session:
            await wait_http(session, f"http://127.0.0.1:{port}/", process)
        await asyncio.sleep(1.0)
        return await window(process.pid, seconds)
    finally:
        await stop(process)


async def charge_all(session: aiohttp.ClientSession, base: str, ports: int) -> None:
    for port_id in range(1, ports + 1):
        body = {"model": MODELS[port_id], "soc": 20}
        async with session.post(f"{base}/api/sim/ports/{port_id}/attach", json=body) as r:
            if r.status != 201:
                raise RuntimeError(f"attach on port {port_id}: {r.status} {await r.text()}")
    for port_id in range(1, ports + 1):
        await wait_state(session, base, port_id, "ready")
        async with session.post(f"{base}/api/ports/{port_id}/start", json={}) as r:
            if r.status != 201:
                raise RuntimeError(f"start on port {port_id}: {r.status} {await r.text()}")
    for port_id in range(1, ports + 1):
        await wait_state(session, base, port_id, "charging")


async def wait_state(session: aiohttp.ClientSession, base: str, port_id: int, state: str) -> None:
    deadline = time.perf_counter() + 30.0
    seen = None
    while time.perf_counter() < deadline:
        async with session.get(f"{base}/api/ports/{port_id}") as response:
            seen = (await response.json()).get("state")
        if seen == state:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"port {port_id} stayed {seen!r}, not {state!r}")


async def sse_client(
    session: aiohttp.ClientSession, url: str, counts: list[int], index: int, ready: asyncio.Event
) -> None:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as response:
        async for line in response.content:
            if line.startswith(b"event:"):
                counts[index] += 1
                if all(counts):
                    ready.set()


async def start_bench_daemon(
    port: int, db: Path, *extra: str, root: Path = ROOT
) -> asyncio.subprocess.Process:
    """``pev-charger run --sim`` with one port per benchmark vehicle and a budget for all."""
    return await asyncio.create_subprocess_exec(
        python(),
        "-m",
        "firmware.cli",
        "run",
        "--sim",
        "--ports",
        str(len(MODELS)),
        "--budget",
        str(420 * len(MODELS)),
        "--port",
        str(port),
        "--db",
        str(db),
        *extra,
        cwd=str(root),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def daemon(seconds: float, clients: int, workdir: Path) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = await start_bench_daemon(port, workdir / "records.db")
    out: dict[str, Any] = {}
    tasks: list[asyncio.Task[None]] = []
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_http(session, f"{base}/api/station", process)
            out["started"] = await window(process.pid, 1.0)
            await charge_all(session, base, len(MODELS))
            await asyncio.sleep(2.0)
            out["charging"] = await window(process.pid, seconds)
            counts = [0] * clients
            ready = asyncio.Event()
            tasks = [
                asyncio.create_task(sse_client(session, f"{base}/api/events", counts, i, ready))
                for i in range(clients)
            ]
            await asyncio.wait_for(ready.wait(), 60.0)
            await asyncio.sleep(1.0)
            before = sum(counts)
            out["sse"] = await window(process.pid, seconds)
            out["sse"]["events_per_s"] = (sum(counts) - before) / seconds
            out["sse"]["clients"] = clients
            async with session.get(f"{base}/api/station") as response:
                station = await response.json()
            out["ports_charging"] = sum(1 for p in station["ports"] if p["state"] == "charging")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
        await stop(process)
    return out


async def measure(seconds: float, clients: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pev-footprint-") as tmp:
        bare = await bare_aiohttp(seconds)
        station = await daemon(seconds, clients, Path(tmp))
    return {"bare_aiohttp": bare, **station}


def run(smoke: bool = False) -> dict[str, Any]:
    seconds, clients = (2.0, 10) if smoke else (10.0, 200)
    data = asyncio.run(measure(seconds, clients))
    rows = [
        ["bare aiohttp, one route, idle", data["bare_aiohttp"]],
        ["daemon, just started, 8 empty ports", data["started"]],
        [f"daemon, {data['ports_charging']} ports charging", data["charging"]],
        [f"daemon, 8 charging + {clients} SSE clients", data["sse"]],
    ]
    print(
        table(
            ["process", "CPU % of a core", "RSS MB", "peak RSS MB"],
            [[name, f["cpu_pct"], f["rss_mb"], f["peak_rss_mb"]] for name, f in rows],
        )
    )
    print(
        f"windows of {seconds:g} s of real time; the SSE clients received "
        f"{data['sse']['events_per_s']:.0f} events/s in all"
    )
    return data
