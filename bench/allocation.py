"""Allocation: the station's sharing policy, the seed rule and the physical bound, one afternoon.

The scenario (bench/scenario-allocation.toml): 24 vehicles from the catalog arrive at an 8-port
station within four hours (seeded); each rider leaves after 1.5 to 4 hours, charged or not. It is
run by the headless scenario runner (host/scenario) through the real station (supervisor,
allocator, sessions, PEV Link over in-memory cables, simulated sensors and relays) in simulated
time, under (a) the station's SharingPolicy and (b) the seed rule SeedPolicy (a vehicle starts only
if its full maximum power fits, and keeps that reservation until it ends), and against (c) the
physical bound (host/scenario/bound.py: every watt of the budget to some vehicle able to take it,
no protocol, a port freed the moment its vehicle is full). It runs at the scenario's 1500 W and
again at 1000 W, where the budget binds most of the time.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from bench.common import BENCH_DIR, hms, table
from bench.eta import errors as eta_errors
from host.scenario.bound import physical_bound
from host.scenario.result import ScenarioResult
from host.scenario.runner import run_scenario
from host.scenario.spec import Scenario, load_scenario

SCENARIO = BENCH_DIR / "scenario-allocation.toml"
SMOKE_SCENARIO = BENCH_DIR / "scenario-smoke.toml"
TIGHT_BUDGET_W = 1000.0
POLICIES = ("sharing", "seed")
LABELS = {"sharing": "(a) SharingPolicy", "seed": "(b) SeedPolicy", "bound": "(c) bound"}


def _run(job: tuple[Scenario, str]) -> ScenarioResult:
    scenario, policy = job
    return run_scenario(scenario, policy)


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
        "budget_violations": s["budget_violations"],
        "sim_s": s["sim_s"],
        "wall_s": s["wall_s"],
    }


def run(smoke: bool = False, workers: int | None = None) -> dict[str, Any]:
    base = load_scenario(SMOKE_SCENARIO if smoke else SCENARIO)
    budgets = [base.budget_w] if smoke else [base.budget_w, TIGHT_BUDGET_W]
    jobs = [(replace(base, budget_w=b), policy) for b in budgets for policy in POLICIES]
    if workers is None:
        workers = 1 if smoke else min(len(jobs), os.cpu_count() or 1)
    results = run_jobs(jobs, workers)
    by_key = {(job[0].budget_w, job[1]): r for job, r in zip(jobs, results, strict=True)}
    summary: dict[str, Any] = {
        "scenario": base.name,
        "seed": base.seed,
        "vehicles": len(base.arrivals),
        "ports": base.ports,
        "budgets": {},
    }
    for budget in budgets:
        bound = physical_bound(replace(base, budget_w=budget))
        rows = []
        per_budget: dict[str, Any] = {}
        for policy in (*POLICIES, "bound"):
            result = bound if policy == "bound" else by_key[(budget, policy)]
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
                    f["budget_violations"] if policy != "bound" else "-",
                ]
            )
        print(f"\n{base.ports} ports, {budget:g} W, {len(base.arrivals)} vehicles:")
        print(
            table(
                [
                    "policy",
                    "energy kWh",
                    "vs (c)",
                    "demand > budget, % of time",
                    "budget used then %",
                    "mean wait",
                    "mean time to full",
                    "full / never charged",
                    "max grants W",
                    "ticks grants > budget",
                ],
                rows,
            )
        )
        sharing = by_key[(budget, "sharing")]
        eta = eta_errors(sharing.vehicles)
        per_budget["sharing_eta"] = eta
        if eta["sessions"]:
            print(
                f"phone page ETA in the {eta['sessions']} sessions that ended full under (a): "
                f"mean absolute error {eta['phone_mae_pct_all']:.0f} % "
                f"(straight line {eta['straight_mae_pct_all']:.0f} %)"
            )
        for policy in POLICIES:
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
            for p in POLICIES
        ]
        print("; ".join(speed))
        summary["budgets"][f"{budget:g}"] = per_budget
    return summary
