"""Allocation: the station's sharing policy, the seed rule and the physical bound, one afternoon.

The scenario (bench/scenario-allocation.toml): 24 vehicles from the catalog arrive at an 8-port
station within four hours (seeded); each rider leaves after 1.5 to 4 hours, charged or not. It is
run by the headless scenario runner (host/scenario) through the real station (supervisor,
allocator, sessions, PEV Link over in-memory cables, simulated sensors and relays) in simulated
time, under (a) the station's SharingPolicy and (b) the seed rule SeedPolicy (a vehicle starts only
if its full maximum power fits, and keeps that reservation until it ends), and against (c) the
physical bound (host/scenario/bound.py: every watt of the budget to some vehicle able to take it,
no protocol, the same riders taking and freeing the ports when the scenario's riders do). The
earlier bound, which frees a port the moment its vehicle is full and draws at plug-in, is kept
beside it as (c0). It runs at the scenario's 1500 W and again at 1000 W, where the budget binds
most of the time.

Beside (a) as the station shares today (every grant counted at the pack's vmax), (a') runs the same
arrivals with every port behind a CC/CV stage that enforces the grant (a TC/Elcon CAN charger model,
hal/sim/elcon.py, on python-can's virtual bus, driven by the real hal.elcon driver; the vehicles are
bare packs), where the allocator counts each grant at the measured voltage plus its margin. Bare
packs behind a stage are compared like with like: (b') is the seed rule behind the same stages and
(c') the bound for bare packs held at vmax by ideal stages (a bare pack takes more near full than a
vehicle's own controller, so (c) is no upper bound for (a')). Every run uses the fast scenario
runner (host/scenario/fast.py), which tests/host/test_scenario_fast.py holds to the reference
runner's outcomes and energy. The phone page's ETA under sharing is scored at 20, 50 and 80 % of
each session that ended full, against the straight line.

``python -m bench.allocation --scenario bench/scenario-busy.toml`` runs the same table on another
scenario file (docs/benchmarks.md measures the busy slice so).
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, hms, summary_line, table
from bench.eta import errors as eta_errors
from host.scenario.bound import physical_bound
from host.scenario.fast import run_fast_scenario
from host.scenario.result import ScenarioResult
from host.scenario.spec import Scenario, load_scenario

SCENARIO = BENCH_DIR / "scenario-allocation.toml"
SMOKE_SCENARIO = BENCH_DIR / "scenario-smoke.toml"
TIGHT_BUDGET_W = 1000.0
SMOKE_END_S = 600.0
TIME_LIMIT_S = {False: 3600.0, True: 180.0}
"""Six day-long runs on a shared two-core machine may take longer than the other benchmarks."""
VARIANTS = ("sharing", "seed", "stage", "seed_stage")
"""Each row that runs the station: (policy, stage behind every port)."""
POLICY_OF = {"sharing": "sharing", "stage": "sharing", "seed": "seed", "seed_stage": "seed"}
STAGE_OF = {"sharing": "", "stage": "elcon", "seed": "", "seed_stage": "elcon"}
BOUNDS = ("bound", "bound_stage", "bound_instant", "bound_stage_instant")
BOUND_OF = {v: "bound_stage" if STAGE_OF[v] else "bound" for v in VARIANTS}
"""Each row is compared with the bound for its own packs."""
LABELS = {
    "sharing": "(a) SharingPolicy, grants at vmax",
    "seed": "(b) SeedPolicy",
    "bound": "(c) bound",
    "stage": "(a') SharingPolicy, stages, measured V + margin",
    "seed_stage": "(b') SeedPolicy, stages",
    "bound_stage": "(c') bound, bare packs behind stages",
    "bound_instant": "(c0) earlier bound, ports freed at once",
    "bound_stage_instant": "(c0') earlier bound, bare packs, ports freed at once",
}
ROWS = (
    "sharing",
    "seed",
    "bound",
    "bound_instant",
    "stage",
    "seed_stage",
    "bound_stage",
    "bound_stage_instant",
)


def _run(job: tuple[Scenario, str]) -> ScenarioResult:
    scenario, policy = job
    # The phone page's estimate is scored for the station's own policy only.
    return run_fast_scenario(scenario, policy, eta=policy == "sharing")


def run_jobs(jobs: list[tuple[Scenario, str]], workers: int) -> list[ScenarioResult]:
    if workers <= 1 or len(jobs) == 1:
        return [_run(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_run, jobs))


def figures(result: ScenarioResult, bound: ScenarioResult) -> dict[str, Any]:
    s = result.summary()
    energy = s["energy_wh"]
    bound_energy = bound.summary()["energy_wh"]
    outcomes = s["outcomes"]
    return {
        "energy_wh": energy,
        "ratio_to_bound": energy / bound_energy if bound_energy else None,
        "energy_in_window_wh": s["energy_in_window_wh"],
        "short_fraction": s["short_fraction"],
        "utilisation_when_short": s["utilisation_when_short"],
        "mean_wait_s": s["mean_wait_s"],
        "mean_time_to_full_s": s["mean_time_to_full_s"],
        "full": outcomes.get("full", 0),
        "never_charged": sum(1 for v in result.vehicles if v.power_on_s is None),
        "outcomes": outcomes,
        "max_allocated_w": s["max_allocated_w"],
        "max_measured_w": result.max_measured_w,
        "budget_violations": s["budget_violations"],
        "sim_s": s["sim_s"],
        "wall_s": s["wall_s"],
    }


def run(
    smoke: bool = False, workers: int | None = None, scenario: Path | None = None
) -> dict[str, Any]:
    base = load_scenario(scenario or (SMOKE_SCENARIO if smoke else SCENARIO))
    if smoke:  # its first ten minutes: every variant runs, the stage one included, in seconds
        base = replace(base, end_s=min(base.end_s, SMOKE_END_S))
    budgets = [base.budget_w] if smoke else [base.budget_w, TIGHT_BUDGET_W]
    variants = [(b, v) for b in budgets for v in VARIANTS]
    jobs = [(replace(base, budget_w=b, stage=STAGE_OF[v]), POLICY_OF[v]) for b, v in variants]
    if workers is None:
        workers = 1 if smoke else min(len(jobs), os.cpu_count() or 1)
    results = run_jobs(jobs, workers)
    by_key = dict(zip(variants, results, strict=True))
    summary: dict[str, Any] = {
        "scenario": base.name,
        "seed": base.seed,
        "vehicles": len(base.arrivals),
        "ports": base.ports,
        "budgets": {},
    }
    for budget in budgets:
        bounds = {
            f"bound{stage and '_stage'}{'' if riders else '_instant'}": physical_bound(
                replace(base, budget_w=budget, stage=stage), riders=riders
            )
            for stage in ("", "elcon")
            for riders in (True, False)
        }
        rows = []
        per_budget: dict[str, Any] = {}
        for policy in ROWS:
            if policy in BOUNDS:
                result, bound = bounds[policy], bounds[policy]
            else:
                result, bound = by_key[(budget, policy)], bounds[BOUND_OF[policy]]
            f = figures(result, bound)
            per_budget[policy] = f
            util = f["utilisation_when_short"]
            rows.append(
                [
                    LABELS[policy],
                    f["energy_wh"] / 1000,
                    f["ratio_to_bound"],
                    100 * f["short_fraction"],
                    None if util is None else 100 * util,
                    hms(f["mean_wait_s"]),
                    hms(f["mean_time_to_full_s"]),
                    f"{f['full']} / {f['never_charged']}",
                    f["max_allocated_w"],
                    f["max_measured_w"] if policy not in BOUNDS else "-",
                    f["budget_violations"] if policy not in BOUNDS else "-",
                ]
            )
        print(f"\n{base.ports} ports, {budget:g} W, {len(base.arrivals)} vehicles:")
        print(
            table(
                [
                    "policy",
                    "energy kWh",
                    "vs its bound",
                    "demand > budget, % of time",
                    "budget used then %",
                    "mean wait",
                    "mean time to full",
                    "full / never charged",
                    "max grants W",
                    "max measured W",
                    "ticks grants > budget",
                ],
                rows,
            )
        )
        seed_wh = per_budget["seed"]["energy_wh"]
        seed_stage_wh = per_budget["seed_stage"]["energy_wh"]
        stage_wh = per_budget["stage"]["energy_wh"]
        per_budget["stage_vs_seed"] = stage_wh / seed_stage_wh if seed_stage_wh else None
        per_budget["sharing_vs_seed"] = (
            per_budget["sharing"]["energy_wh"] / seed_wh if seed_wh else None
        )
        for variant in VARIANTS:
            earlier = bounds[BOUND_OF[variant] + "_instant"].summary()["energy_wh"]
            per_budget[variant]["ratio_to_earlier_bound"] = (
                per_budget[variant]["energy_wh"] / earlier if earlier else None
            )
        print(
            f"(a')/(c') {_ratio(per_budget['stage']['ratio_to_bound'])}, "
            f"(a')/(b') {_ratio(per_budget['stage_vs_seed'])}; "
            f"(a)/(c) {_ratio(per_budget['sharing']['ratio_to_bound'])}, "
            f"(a)/(b) {_ratio(per_budget['sharing_vs_seed'])}; against the earlier bound "
            f"(a')/(c0') {_ratio(per_budget['stage']['ratio_to_earlier_bound'])}, "
            f"(a)/(c0) {_ratio(per_budget['sharing']['ratio_to_earlier_bound'])}"
        )
        for variant in ("sharing", "stage"):
            eta = eta_errors(by_key[(budget, variant)].vehicles)
            per_budget[f"{variant}_eta"] = eta
            if not eta["sessions"]:
                continue
            print(
                f"phone page ETA, {eta['sessions']} sessions that ended full under "
                f"{LABELS[variant]}: mean absolute error at 20/50/80 % of the session "
                + " / ".join(_pct(eta["phone_mae_pct"][k]) for k in ("20", "50", "80"))
                + f", all {_pct(eta['phone_mae_pct_all'])}; straight line "
                + " / ".join(_pct(eta["straight_mae_pct"][k]) for k in ("20", "50", "80"))
                + f", all {_pct(eta['straight_mae_pct_all'])}"
            )
        for policy in VARIANTS:
            violations = by_key[(budget, policy)].violations
            if violations:
                first = violations[0]
                print(
                    f"{LABELS[policy]}: grants above the budget, first at {hms(first['t_s'])}: "
                    f"{first['allocated_w']:.0f} W, ports {first['ports']}"
                )
        speed = [
            f"{LABELS[p]} {hms(by_key[(budget, p)].sim_s)} simulated in "
            f"{by_key[(budget, p)].wall_s:.0f} s"
            for p in VARIANTS
        ]
        print("; ".join(speed))
        summary["budgets"][f"{budget:g}"] = per_budget
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.allocation", description=__doc__)
    parser.add_argument("--scenario", type=Path, help="a scenario file instead of the day's")
    parser.add_argument("--smoke", action="store_true", help="the first ten minutes only")
    args = parser.parse_args(argv)
    result = run(smoke=args.smoke, scenario=args.scenario)
    print(summary_line("allocation", result), flush=True)
    return 0


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} %"


if __name__ == "__main__":
    sys.exit(main())
