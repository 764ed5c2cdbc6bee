"""ETA: the time-to-full the phone page shows, at 20/50/80 % of each session, against the end.

Every catalog vehicle that an INA228 port can charge is charged alone at its full current from
10, 30, 50 and 70 % state of charge until its battery says full, with the vehicle model's physics,
in that order: as on a station, each session that ends full teaches the next of its model.
At each step the estimate is computed by the station's own rule
(``firmware.station.progress.eta_seconds``) from what the station would hold at that moment (the
declared battery profile, the last telemetry rounded as on the wire, the measured current, the
grant), and the straight-line estimate (energy left over
power now) from the same figures. The error at a point is |estimate - actual time left| over the
actual time left.

Under sharing (not in the smoke run: a few minutes of one core), the same errors are given for the
sessions of bench/scenario-eta-sharing.toml: 16 vehicles at a 6-port station sharing 500 W, every
rider staying until full, run by the fast scenario runner through the real station, whose ETA
samples every 10 s are scored the same way. When the allocation benchmark has run, its sessions
that ended full while sharing the budget can be scored too (``sharing_records``).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from bench.common import BENCH_DIR, table
from firmware.pevlink import Battery, Telemetry
from firmware.station.eta import straight_line_seconds
from firmware.station.port import PortState
from firmware.station.progress import end_session, eta_seconds, observe_taper
from hal.interfaces import PowerReading
from host.scenario.fast import run_fast_scenario
from host.scenario.physics import delivered_power_w
from host.scenario.result import EtaSample, VehicleRecord
from host.scenario.spec import load_scenario
from host.vehicle.agent import battery_message
from host.vehicle.catalog import load_catalog
from host.vehicle.model import SimVehicle
from host.vehicle.spec import VehicleSpec, VehicleState

FRACTIONS = (0.2, 0.5, 0.8)
PORT_MAX_V = 84.0
PORT_MAX_A = 5.0
SHARING_SCENARIO = BENCH_DIR / "scenario-eta-sharing.toml"


@dataclass(eq=False)
class BenchPort:
    """What the station holds about one port, kept for the whole session as the station does."""

    grant_a: float
    battery: Battery | None = None
    telemetry: Telemetry | None = None
    reading: PowerReading | None = None
    state: PortState = PortState.CHARGING
    taper: list[tuple[float, float]] = field(default_factory=list)
    session: Any = field(default_factory=lambda: SimpleNamespace(end_reason=None))


def bench_port(grant_a: float) -> BenchPort:
    return BenchPort(grant_a)


def phone_eta(vehicle: SimVehicle, port: BenchPort, t_s: float = 0.0) -> float | None:
    """The station's ETA rule on what the station would know about this vehicle now."""
    port.battery = battery_message(vehicle)
    port.telemetry = Telemetry(
        soc_pct=round(min(100.0, vehicle.soc_pct), 1),
        voltage_v=round(vehicle.terminal_voltage_v, 2),
        current_a=round(vehicle.current_a, 2),
        temperature_c=round(vehicle.temperature_c, 1),
        flags=1,
    )
    volts, amps = vehicle.terminal_voltage_v, vehicle.current_a
    port.reading = PowerReading(volts, amps, volts * amps)
    # The station measures each port every pass; the same rule measures here.
    observe_taper(port, t_s)  # type: ignore[arg-type]
    result: float | None = eta_seconds(port)  # type: ignore[arg-type]
    return result


def charge_alone(spec: VehicleSpec, soc_pct: float, step_s: float) -> VehicleRecord:
    """One session at full current from ``soc_pct`` to full, with an ETA sample every step.

    The session ends as the station's do: if full, what it measured teaches the next session of
    the same model (the station's history, in memory here).
    """
    vehicle = SimVehicle(spec, soc_pct=soc_pct, temperature_c=25.0, seed=3)
    grant = min(spec.i_max, PORT_MAX_A)
    vehicle.set_grant(grant)
    record = VehicleRecord(0, spec.id, 0.0, soc_pct, spec.capacity_wh, power_on_s=0.0)
    t = 0.0
    port = bench_port(grant)
    vehicle.advance(0.5, True)  # the vehicle ramps to its grant before the first estimate
    while vehicle.state is not VehicleState.FULL and t < 24 * 3600:
        record.eta.append(
            EtaSample(
                t_s=t,
                soc_pct=round(vehicle.soc_pct, 1),
                eta_s=phone_eta(vehicle, port, t),
                straight_s=straight_line_seconds(
                    round(vehicle.soc_pct, 1), spec.capacity_wh, delivered_power_w(vehicle)
                ),
            )
        )
        vehicle.advance(step_s, True)
        t += step_s
    record.outcome = "full" if vehicle.state is VehicleState.FULL else "unfinished"
    record.ended_s = t
    port.session.end_reason = record.outcome
    port.state = PortState.DONE
    end_session(port)  # type: ignore[arg-type]
    return record


def nearest(samples: list[EtaSample], t_s: float) -> EtaSample:
    return min(samples, key=lambda sample: abs(sample.t_s - t_s))


def errors(records: Iterable[VehicleRecord]) -> dict[str, Any]:
    """Mean absolute error (% of the time actually left) at each fraction of each session."""
    phone: dict[float, list[float]] = {f: [] for f in FRACTIONS}
    straight: dict[float, list[float]] = {f: [] for f in FRACTIONS}
    missing = dict.fromkeys(FRACTIONS, 0)
    sessions = 0
    for record in records:
        if record.outcome != "full" or record.ended_s is None or not record.eta:
            continue
        start = record.power_on_s if record.power_on_s is not None else record.eta[0].t_s
        duration = record.ended_s - start
        if duration <= 0:
            continue
        sessions += 1
        for f in FRACTIONS:
            at = start + f * duration
            sample = nearest(record.eta, at)
            actual = record.ended_s - sample.t_s
            if actual <= 0:
                continue
            if sample.eta_s is None:
                missing[f] += 1
            else:
                phone[f].append(abs(sample.eta_s - actual) / actual * 100.0)
            if sample.straight_s is not None:
                straight[f].append(abs(sample.straight_s - actual) / actual * 100.0)

    def mean(values: list[float]) -> float | None:
        return statistics.fmean(values) if values else None

    return {
        "sessions": sessions,
        "phone_mae_pct": {f"{int(f * 100)}": mean(phone[f]) for f in FRACTIONS},
        "straight_mae_pct": {f"{int(f * 100)}": mean(straight[f]) for f in FRACTIONS},
        "phone_mae_pct_all": mean([e for f in FRACTIONS for e in phone[f]]),
        "straight_mae_pct_all": mean([e for f in FRACTIONS for e in straight[f]]),
        "phone_unavailable": {f"{int(f * 100)}": missing[f] for f in FRACTIONS},
    }


def error_rows(label: str, figures: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, key in (("phone page ETA", "phone_mae_pct"), ("straight line", "straight_mae_pct")):
        by = figures[key]
        rows.append(
            [label, name, figures["sessions"], by["20"], by["50"], by["80"], figures[f"{key}_all"]]
        )
    return rows


HEADERS = ["sessions", "estimate", "n", "at 20 % (MAE %)", "at 50 %", "at 80 %", "all"]


def run(smoke: bool = False, sharing_records: list[VehicleRecord] | None = None) -> dict[str, Any]:
    specs = [s for s in load_catalog() if s.v_max <= PORT_MAX_V]
    starts: tuple[float, ...] = (10.0, 30.0, 50.0, 70.0)
    step_s = 10.0
    if smoke:
        specs, starts, step_s = specs[:3], (60.0,), 30.0
    records = [charge_alone(spec, soc, step_s) for spec in specs for soc in starts]
    alone = errors(records)
    rows = error_rows("alone, full current", alone)
    # Each model's sessions run in turn and the later ones start from what the earlier taught;
    # the first of each model had nothing to learn from.
    first = errors(records[:: len(starts)])
    rows += error_rows("alone, first of its model", first)
    result: dict[str, Any] = {"alone": alone, "alone_first_of_model": first}
    if not smoke:
        scenario = run_fast_scenario(load_scenario(SHARING_SCENARIO), "sharing")
        shared = errors(scenario.vehicles)
        rows += error_rows("sharing (scenario-eta-sharing)", shared)
        result["sharing_scenario"] = shared
    if sharing_records:
        shared = errors(sharing_records)
        rows += error_rows("sharing (allocation)", shared)
        result["sharing"] = shared
    print(table(HEADERS, rows))
    per_model = []
    for spec in specs:
        mine = [r for r in records if r.model == spec.id]
        figures = errors(mine)
        per_model.append([spec.id, figures["phone_mae_pct_all"], figures["straight_mae_pct_all"]])
    print(table(["vehicle", "phone page MAE %", "straight line MAE %"], per_model))
    return result
