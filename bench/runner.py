"""Runner: how fast the scenario runners simulate a busy station, in CPU seconds of one core.

Each figure is one run in a process of its own (``time.process_time`` around the run, so the
import and the scenario's loading are not counted): the fast runner (host/scenario/fast.py) on
``bench/scenario-busy.toml`` cut to 600 s at 1000 W, every port charging and the budget binding;
the reference runner (host/scenario/runner.py) on the same slice cut to 300 s; and the fast
runner on the whole allocation day (``bench/scenario-allocation.toml``, SharingPolicy, 1500 W),
with the time-to-full samples the allocation benchmark scores and without them
(``pev-scenario --no-eta``). Each also gives the energy delivered, which must not move.

``PEV_BENCH_RUNNER_BEFORE=/path/to/an/older/checkout`` measures that checkout's code too, each
figure before and after in turn, in the same run (this bench's scenario files and timing code;
``firmware``, ``hal`` and ``host`` come from the checkout).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from bench.common import ROOT, python, table

TIME_LIMIT_S = {False: 2400.0, True: 180.0}
"""A whole day takes minutes of CPU, and twice as many runs with a checkout to compare."""
CASE_TIMEOUT_S = 900.0
"""One run that takes longer is stuck: it is stopped rather than left holding a core."""

RUN = """
import json, sys, time
from dataclasses import replace
from host.scenario.spec import load_scenario
kind, path, end_s, budget, eta = sys.argv[1:6]
end_s, budget, eta = float(end_s), float(budget), eta == "1"
scenario = load_scenario(path)
scenario = replace(scenario, budget_w=budget, **({"end_s": end_s} if end_s > 0 else {}))
if kind == "fast":
    from host.scenario.fast import run_fast_scenario as run
else:
    from host.scenario.runner import run_scenario as run
kwargs = {} if eta else {"eta": False}
started = time.process_time()
result = run(scenario, "sharing", **kwargs)
cpu = time.process_time() - started
print(json.dumps({
    "cpu_s": cpu,
    "sim_s": result.sim_s,
    "x_real_time": result.sim_s / cpu,
    "energy_wh": sum(v.energy_in_wh for v in result.vehicles),
}))
"""

BUSY = str(ROOT / "bench" / "scenario-busy.toml")
DAY = str(ROOT / "bench" / "scenario-allocation.toml")


def cases(smoke: bool) -> list[tuple[str, str, str, float, float, bool]]:
    """(name, runner, scenario, end_s (0: the file's), budget W, time-to-full samples)."""
    if smoke:
        return [
            ("busy slice, fast runner, 60 s", "fast", BUSY, 60.0, 1000.0, True),
            ("busy slice, reference runner, 30 s", "reference", BUSY, 30.0, 1000.0, True),
        ]
    return [
        ("busy slice, fast runner, 600 s", "fast", BUSY, 600.0, 1000.0, True),
        ("busy slice, reference runner, 300 s", "reference", BUSY, 300.0, 1000.0, True),
        ("allocation day, fast runner", "fast", DAY, 0.0, 1500.0, True),
        ("allocation day, fast runner, no ETA samples", "fast", DAY, 0.0, 1500.0, False),
    ]


def runs(root: Path, kind: str, eta: bool) -> bool:
    """Whether that checkout has this runner, and takes ``eta`` when asked not to sample."""
    fast = root / "host" / "scenario" / "fast.py"
    if kind == "fast" and not fast.exists():
        return False
    return eta or (fast.exists() and "eta: bool" in fast.read_text())


def measure(root: Path, case: tuple[str, str, str, float, float, bool]) -> dict[str, Any] | None:
    _, kind, path, end_s, budget, eta = case
    if not runs(root, kind, eta):
        return None
    args = [kind, path, str(end_s), str(budget), "1" if eta else "0"]
    done = subprocess.run(
        [python(), "-c", RUN, *args],
        cwd=str(root),
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=False,
        timeout=CASE_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{case[0]} ({root}) failed: {done.stderr.strip()[-400:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _brief(label: str, figures: dict[str, Any] | None) -> str:
    if figures is None:
        return f"{label} -"
    return f"{label} {figures['cpu_s']:.1f} s CPU ({figures['x_real_time']:.0f} x)"


def run(smoke: bool = False) -> dict[str, Any]:
    before_root = os.environ.get("PEV_BENCH_RUNNER_BEFORE")
    roots = {"after": ROOT} if not before_root else {"before": Path(before_root), "after": ROOT}
    out: dict[str, Any] = {"load_at_start": round(os.getloadavg()[0], 2), "cases": {}}
    rows = []
    for case in cases(smoke):
        got = {label: measure(root, case) for label, root in roots.items()}
        out["cases"][case[0]] = got
        for label, figures in got.items():
            if figures is None:
                rows.append([case[0], label, None, None, None, None])
                continue
            rows.append(
                [
                    case[0],
                    label,
                    figures["cpu_s"],
                    figures["sim_s"],
                    figures["x_real_time"],
                    figures["energy_wh"],
                ]
            )
        print(f"{case[0]}: " + ", ".join(_brief(label, f) for label, f in got.items()), flush=True)
    out["load_at_end"] = round(os.getloadavg()[0], 2)
    print(
        table(["run", "code", "CPU s", "simulated s", "x real time", "Wh"], rows)
        + f"\nload average {out['load_at_start']} at the start, {out['load_at_end']} at the end"
        + (f"; before: {before_root}" if before_root else "")
    )
    return out
