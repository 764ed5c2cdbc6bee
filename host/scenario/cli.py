"""``pev-scenario``: run a scenario file against the station in simulated time.

    pev-scenario bench/scenario-allocation.toml                 # the station's sharing policy
    pev-scenario bench/scenario-allocation.toml --policy seed   # the seed rule, for comparison
    pev-scenario bench/scenario-allocation.toml --policy bound  # the upper bound, same riders
    pev-scenario FILE --policy bound-instant    # the earlier bound: ports freed at once
    pev-scenario FILE --seed 3 --vehicles --json out.json
    pev-scenario FILE --fast --stage elcon                      # fast runner, a stage on every port
    pev-scenario FILE --fast --no-eta                           # without sampling the time to full

It prints one line per vehicle (with ``--vehicles``) and the run's figures; ``--json`` also writes
the whole result (every vehicle, every sample) to a file. A bad scenario file is one line on stderr
and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from host.scenario.bound import physical_bound
from host.scenario.fast import run_fast_scenario
from host.scenario.result import ScenarioResult
from host.scenario.rig import STAGES
from host.scenario.runner import POLICIES, run_scenario
from host.scenario.spec import ScenarioError, load_scenario


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pev-scenario",
        description="Run vehicles arriving at a station, in simulated time.",
    )
    parser.add_argument("scenario", help="scenario file (TOML)")
    parser.add_argument(
        "--policy",
        choices=[*POLICIES, "bound", "bound-instant"],
        default="sharing",
        help="allocation policy (default: sharing, the station's own)",
    )
    parser.add_argument("--seed", type=int, help="override the file's seed")
    parser.add_argument("--budget", type=float, help="override the budget in watts")
    parser.add_argument("--arrivals", type=int, help="only the first N arrivals")
    parser.add_argument(
        "--fast", action="store_true", help="the fast runner (host/scenario/fast.py)"
    )
    parser.add_argument(
        "--stage",
        choices=[s for s in STAGES if s],
        help="put a simulated CAN charger behind every port (bare packs)",
    )
    parser.add_argument(
        "--no-eta",
        action="store_true",
        help="do not sample the ports' time to full (a run that only needs energy and outcomes)",
    )
    parser.add_argument("--vehicles", action="store_true", help="print one line per vehicle")
    parser.add_argument("--json", metavar="FILE", help="write the whole result as JSON")
    return parser


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"


def vehicle_lines(result: ScenarioResult) -> list[str]:
    lines = [
        f"{'#':>3} {'model':<22} {'port':>4} {'arrives':>8} {'power on':>8} {'ends':>8} "
        f"{'Wh in':>7} {'SoC':>11} outcome"
    ]
    for v in result.vehicles:
        soc = f"{v.soc_arrival_pct:.0f}->{v.soc_end_pct:.0f}%" if v.soc_end_pct is not None else "-"
        outcome = v.outcome or "?"
        if v.fault_code:
            outcome += f" ({v.fault_code})"
        lines.append(
            f"{v.index:>3} {v.model:<22} {v.port_id or '-':>4} {_fmt(v.arrival_s):>8} "
            f"{_fmt(v.power_on_s):>8} {_fmt(v.ended_s or v.left_s):>8} {v.energy_in_wh:>7.1f} "
            f"{soc:>11} {outcome}"
        )
    return lines


def summary_lines(result: ScenarioResult) -> list[str]:
    s = result.summary()
    util = s["utilisation_when_short"]
    return [
        f"scenario {s['scenario']} (seed {s['seed']}), policy {s['policy']}: "
        f"{s['vehicles']} vehicles, {result.ports} ports, {result.budget_w:g} W",
        "outcomes: " + ", ".join(f"{k} {n}" for k, n in s["outcomes"].items()),
        f"energy delivered: {s['energy_wh']:.0f} Wh "
        f"({s['energy_in_window_wh']:.0f} Wh by the last arrival at {_fmt(result.window_s)})",
        f"demand above the budget {100 * s['short_fraction']:.1f} % of the time; "
        "budget used then: " + ("-" if util is None else f"{100 * util:.1f} %"),
        f"mean wait before charging {_fmt(s['mean_wait_s'])}, "
        f"mean time to full {_fmt(s['mean_time_to_full_s'])}",
        f"grants: at most {s['max_allocated_w']:.0f} W, above the budget on "
        f"{s['budget_violations']} supervisor ticks",
        f"simulated {_fmt(s['sim_s'])} in {s['wall_s']:.1f} s "
        f"({s['sim_s'] / max(1e-9, s['wall_s']):.0f} x real time)",
    ]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        scenario = load_scenario(args.scenario, seed=args.seed)
    except ScenarioError as exc:
        print(f"pev-scenario: {exc}", file=sys.stderr)
        return 2
    if args.budget is not None:
        scenario = replace(scenario, budget_w=args.budget)
    if args.arrivals is not None:
        scenario = scenario.with_arrivals(args.arrivals)
    if args.stage:
        scenario = replace(scenario, stage=args.stage)
    if args.policy in ("bound", "bound-instant"):
        result = physical_bound(scenario, riders=args.policy == "bound")
    elif args.fast:
        result = run_fast_scenario(scenario, args.policy, eta=not args.no_eta)
    else:
        result = run_scenario(scenario, args.policy, eta=not args.no_eta)
    if args.vehicles:
        print("\n".join(vehicle_lines(result)))
    print("\n".join(summary_lines(result)))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
