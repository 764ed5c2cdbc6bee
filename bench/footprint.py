"""Footprint: the daemon's memory and idle CPU with 8 charging ports, and with 200 SSE clients.

Real processes: ``pev-charger run --sim --ports 8`` (the bench daemon at real speed, simulated
hardware, its SQLite records in a temporary directory) with a vehicle charging on every port,
started through the HTTP API; then the same with 200 clients holding ``/api/events`` open and
reading every event; next to a bare aiohttp process serving one route, the least any Python web
process costs. CPU is the process's own user + system time over the window (all its threads), as
a share of one core, and per thread; memory is its resident set (VmRSS) and its peak (VmHWM),
from /proc.

Two ways to give the ports their vehicles, both measured: ``inline``, the bench's simulated
vehicles (agents and battery physics) inside the daemon (``POST /api/sim/ports/{id}/attach``);
``separate``, the station process alone: each port gets a pack (``POST .../pack``, the electrical
side the bench must simulate in place of the hardware) and a ``pev-vehicle --serial <pty>``
process of its own speaks PEV Link on the port's pty, as an outside device would.
``PEV_BENCH_VEHICLES=inline`` or ``separate`` measures only one. The daemon runs under
bench/probe.py, which records the thread CPU time of each supervisor pass and each safety pass
and names the daemon's threads, so each window also gives every thread's share (from
/proc/PID/task), and what of it stands in for hardware (the bench world's physics steps and the
pty cables' threads) apart from the station's own; ``PEV_BENCH_PROFILE=DIR`` also writes a
profile of every thread over each window
(``DIR/<mode>-<window>/<thread>.prof``, pstats files; yappi on CPU time).
``PEV_BENCH_DAEMON_ROOT`` runs the daemon from another checkout (to compare with an older one).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import ROOT, python, table
from bench.probed import probed_window
from bench.proc import free_port, window

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
    seen, view = None, {}
    while time.perf_counter() < deadline:
        async with session.get(f"{base}/api/ports/{port_id}") as response:
            view = await response.json()
            seen = view.get("state")
        if seen == state:
            return
        await asyncio.sleep(0.1)
    why = view.get("fault") or view.get("state_text")
    raise RuntimeError(f"port {port_id} stayed {seen!r}, not {state!r}: {why}")


async def sse_client(
    session: aiohttp.ClientSession, url: str, counts: list[int], index: int, ready: asyncio.Event
) -> None:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as response:
        async for line in response.content:
            if line.startswith(b"event:"):
                counts[index] += 1
                if all(counts):
                    ready.set()


def daemon_args(port: int, db: Path) -> list[str]:
    """``pev-charger run --sim``'s arguments: one port per benchmark vehicle, a budget for all."""
    ports, budget = str(len(MODELS)), str(420 * len(MODELS))
    where = ["--port", str(port), "--db", str(db)]
    return ["run", "--sim", "--ports", ports, "--budget", budget, *where]


async def start_bench_daemon(
    port: int, db: Path, *extra: str, root: Path = ROOT
) -> asyncio.subprocess.Process:
    """The bench daemon (``daemon_args``), from ``root``'s firmware."""
    return await asyncio.create_subprocess_exec(
        python(),
        "-m",
        "firmware.cli",
        *daemon_args(port, db),
        *extra,
        cwd=str(root),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def start_probed_daemon(
    port: int, workdir: Path, profiling: bool, root: Path
) -> asyncio.subprocess.Process:
    """The bench daemon under bench/probe.py, from ``root``'s firmware."""
    args = [str(workdir / "passes.json"), *([str(workdir / "profile")] if profiling else []), "--"]
    return await asyncio.create_subprocess_exec(
        python(),
        str(ROOT / "bench" / "probe.py"),
        *args,
        *daemon_args(port, workdir / "records.db"),
        cwd=str(root),
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def plug_separate(
    session: aiohttp.ClientSession, base: str, ports: int
) -> list[asyncio.subprocess.Process]:
    """A pack on every port and a ``pev-vehicle`` process on its pty: the vehicles' own CPU is
    theirs, not the station's."""
    vehicles = []
    for port_id in range(1, ports + 1):
        body = {"model": MODELS[port_id], "soc": 20}
        async with session.post(f"{base}/api/sim/ports/{port_id}/pack", json=body) as r:
            if r.status != 201:
                raise RuntimeError(f"pack on port {port_id}: {r.status} {await r.text()}")
            ptys = {p["id"]: p["pty"] for p in (await r.json())["ports"]}
        vehicles.append(
            await asyncio.create_subprocess_exec(
                python(),
                "-m",
                "host.vehicle.cli",
                "--serial",
                ptys[port_id],
                "--model",
                MODELS[port_id],
                "--soc",
                "20",
                "--seed",
                str(port_id),
                cwd=str(ROOT),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        )
    return vehicles


async def start_all(session: aiohttp.ClientSession, base: str, ports: int) -> None:
    for port_id in range(1, ports + 1):
        await wait_state(session, base, port_id, "ready")
        async with session.post(f"{base}/api/ports/{port_id}/start", json={}) as r:
            if r.status != 201:
                raise RuntimeError(f"start on port {port_id}: {r.status} {await r.text()}")
    for port_id in range(1, ports + 1):
        await wait_state(session, base, port_id, "charging")


async def daemon(
    seconds: float, clients: int, workdir: Path, vehicles: str, profile_dir: Path | None
) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    root = Path(os.environ.get("PEV_BENCH_DAEMON_ROOT") or ROOT)

    def profile(name: str) -> Path | None:
        return profile_dir / f"{vehicles}-{name}" if profile_dir else None

    process = await start_probed_daemon(port, workdir, profile_dir is not None, root)
    out: dict[str, Any] = {"vehicles": vehicles}
    tasks: list[asyncio.Task[None]] = []
    cars: list[asyncio.subprocess.Process] = []
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_http(session, f"{base}/api/station", process)
            out["started"] = await window(process.pid, 1.0)
            if vehicles == "separate":
                cars = await plug_separate(session, base, len(MODELS))
                await start_all(session, base, len(MODELS))
            else:
                await charge_all(session, base, len(MODELS))
            await asyncio.sleep(2.0)
            out["charging"] = await probed_window(
                process.pid, seconds, workdir, profile("charging")
            )
            async with session.get(f"{base}/api/station") as response:
                ports = (await response.json())["ports"]
            out["charging"]["ports_charging"] = sum(1 for p in ports if p["state"] == "charging")
            counts = [0] * clients
            ready = asyncio.Event()
            tasks = [
                asyncio.create_task(sse_client(session, f"{base}/api/events", counts, i, ready))
                for i in range(clients)
            ]
            await asyncio.wait_for(ready.wait(), 60.0)
            await asyncio.sleep(1.0)
            before = sum(counts)
            out["sse"] = await probed_window(process.pid, seconds, workdir, profile("sse"))
            out["sse"]["events_per_s"] = (sum(counts) - before) / seconds
            out["sse"]["clients"] = clients
            async with session.get(f"{base}/api/station") as response:
                station = await response.json()
            out["ports_charging"] = sum(1 for p in station["ports"] if p["state"] == "charging")
            out["sse"]["ports_charging"] = out["ports_charging"]
            out["ports_not_charging"] = {
                p["id"]: [p["state"], p.get("state_text")]
                for p in station["ports"]
                if p["state"] != "charging" and p["id"] in MODELS
            }
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
        for car in cars:
            await stop(car)
        await stop(process)
    return out


async def measure(seconds: float, clients: int, modes: list[str]) -> dict[str, Any]:
    profile_dir = os.environ.get("PEV_BENCH_PROFILE")
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pev-footprint-") as tmp:
        out["bare_aiohttp"] = await bare_aiohttp(seconds)
        for mode in modes:
            workdir = Path(tmp) / mode
            workdir.mkdir()
            out[mode] = await daemon(
                seconds, clients, workdir, mode, Path(profile_dir) if profile_dir else None
            )
    return out


def run(smoke: bool = False) -> dict[str, Any]:
    seconds, clients = (2.0, 10) if smoke else (10.0, 200)
    chosen = os.environ.get("PEV_BENCH_VEHICLES")
    modes = [chosen] if chosen in ("inline", "separate") else ["inline", "separate"]
    data = asyncio.run(measure(seconds, clients, modes))
    rows: list[list[Any]] = [["bare aiohttp, one route, idle", data["bare_aiohttp"]]]
    for mode in modes:
        d = data[mode]
        rows += [
            [f"{mode}: daemon, just started, 8 empty ports", d["started"]],
            [f"{mode}: daemon, 8 ports charging", d["charging"]],
            [f"{mode}: daemon, 8 charging + {clients} SSE clients", d["sse"]],
        ]
    print(
        table(
            ["process", "CPU % of a core", "RSS MB", "peak RSS MB", "charging at the end"],
            [
                [name, f["cpu_pct"], f["rss_mb"], f["peak_rss_mb"], f.get("ports_charging", "")]
                for name, f in rows
            ],
        )
    )
    passes = [
        [
            f"{mode}: {label}, {kind} pass",
            w[f"{kind}_passes"],
            w[f"{kind}_p50_us"],
            w[f"{kind}_p99_us"],
        ]
        for mode in modes
        for label, w in (("charging", data[mode]["charging"]), ("SSE", data[mode]["sse"]))
        for kind in ("supervisor", "safety", "world")
    ]
    print(table(["window", "passes", "CPU p50 µs", "CPU p99 µs"], passes))
    print("(a world pass: one physics step of the bench's simulated electrical world)")
    print(
        table(
            [
                "window",
                "process CPU %",
                "simulated hardware CPU %",
                "of it sensors",
                "station's own CPU %",
            ],
            [
                [
                    f"{mode}: {label}",
                    w["cpu_pct"],
                    w["simulated_hw_pct"],
                    w.get("simulated_sensors_pct", ""),
                    w["station_pct"],
                ]
                for mode in modes
                for label, w in (("charging", data[mode]["charging"]), ("SSE", data[mode]["sse"]))
            ],
        )
    )
    print(
        "(simulated hardware: the bench world's physics steps, the simulated I2C bus's "
        "transfers with the sensors' register models, and the pty cables' threads)"
    )
    for mode in modes:
        windows = (("charging", data[mode]["charging"]), ("SSE", data[mode]["sse"]))
        names = list(dict.fromkeys(n for _, w in windows for n in w["threads"]))
        print(
            table(
                [f"{mode}: thread", *(f"{label}: CPU %" for label, _ in windows)],
                [[n, *(w["threads"].get(n, 0.0) for _, w in windows)] for n in names],
            )
        )
    for mode in modes:
        if data[mode]["ports_not_charging"]:
            print(f"{mode}: ports not charging at the end: {data[mode]['ports_not_charging']}")
    print(
        f"load average {os.getloadavg()[0]:.2f} at the end; "
        f"windows of {seconds:g} s of real time; the SSE clients received "
        + ", ".join(f"{data[m]['sse']['events_per_s']:.0f} events/s ({m})" for m in modes)
        + " in all"
    )
    return data
