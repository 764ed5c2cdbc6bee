"""Scenario files: a station (ports, budget) and the vehicles that arrive at it, seeded.

A scenario is a TOML file::

    [scenario]
    name = "busy-afternoon"
    seed = 2026                 # same seed, same arrivals, same result
    ports = 8
    layout = "ina228"           # "ina228": every port 12-84 V; "bench": every fourth an INA219 port
    budget_w = 1500
    end_s = 43200               # simulated time limit; the run ends earlier once everyone has left

    [arrivals]                  # generated arrivals (a Poisson process conditioned on the count)
    count = 24
    window_s = 14400            # they arrive within the first four hours
    soc_pct = [10, 50]          # uniform state of charge on arrival
    temperature_c = [18, 28]    # uniform battery (and ambient) temperature
    stay_s = [3600, 14400]      # optional: each rider leaves after this long, charged or not

    [arrivals.mix]              # catalog id = relative weight
    "ebike-36v-500wh" = 4
    "scooter-xiaomi-m365" = 2

    [[vehicle]]                 # optional fixed arrivals, added to the generated ones
    at_s = 600
    model = "eunicycle-84v"
    soc_pct = 30
    fault = "overdraw"          # optional: a fault it commits (host.vehicle.faults.FaultKind)
    fault_after_s = 120         # this long after power-on

Other ``[scenario]`` keys (defaults in :class:`Scenario`): ``stage``, ``poll_period_s``,
``physics_dt_s``, ``sample_period_s``, ``curve_period_s``, ``baud``, ``sensor_range_factor``,
``start_delay_s``, ``pickup_delay_s``.
"""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from host.scenario.rig import LAYOUTS, STAGES
from host.vehicle.catalog import load_catalog
from host.vehicle.faults import FaultKind


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class Arrival:
    index: int
    at_s: float
    model: str
    soc_pct: float
    temperature_c: float = 25.0
    stay_s: float | None = None
    """The rider comes back after this long and leaves, charged or not (None: when full)."""
    seed: int = 0
    """Seeds the pack's cell imbalance."""
    fault: str | None = None
    """A :class:`~host.vehicle.faults.FaultKind` value the vehicle commits while charging."""
    fault_after_s: float = 60.0
    """How long after power-on the fault happens."""


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    seed: int = 1
    ports: int = 8
    layout: str = "ina228"
    stage: str = ""
    """``"elcon"``: every port behind a simulated CAN charger that enforces the grant (bare packs,
    the grants counted at the measured voltage); ``""``: each vehicle regulates its own current."""
    budget_w: float = 1500.0
    end_s: float = 12 * 3600.0
    poll_period_s: float = 0.25
    """The supervisor's period. The station's own default is 0.05 s; four times slower keeps
    every protocol timer and safety rule working (the pack check after power-on has 0.5 s, the
    watchdog is set to hold for two periods) and makes a day of eight ports much cheaper."""
    physics_dt_s: float = 0.25
    """The longest physics step; every sensor read first brings the physics to the present."""
    sample_period_s: float = 10.0
    """How often the runner samples power, demand and the phone page's ETA."""
    curve_period_s: float = 60.0
    """The station's own sample period (the phone page's charge curve); 5 s on the station."""
    baud: int | None = 115200
    sensor_range_factor: float = 1.0
    """Each sensor is calibrated for the port's maximum current times this factor (1.0 as the
    bench and the Raspberry Pi backends do)."""
    start_delay_s: float = 5.0
    """From the port saying ready to the rider pressing start."""
    pickup_delay_s: float = 0.0
    """From the end of the charge to the rider unplugging."""
    arrivals: tuple[Arrival, ...] = ()
    source: str = "<scenario>"

    @property
    def window_s(self) -> float:
        """When the last vehicle arrives."""
        return max((a.at_s for a in self.arrivals), default=0.0)

    def with_arrivals(self, count: int) -> Scenario:
        """The same scenario with only its first ``count`` arrivals (for quick runs)."""
        return replace(self, arrivals=self.arrivals[:count])


_NUMBER_KEYS = {
    "seed": int,
    "ports": int,
    "budget_w": float,
    "end_s": float,
    "poll_period_s": float,
    "physics_dt_s": float,
    "sample_period_s": float,
    "curve_period_s": float,
    "baud": int,
    "sensor_range_factor": float,
    "start_delay_s": float,
    "pickup_delay_s": float,
}


def _number(where: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{where} must be a number, not {value!r}")
    if kind is int:
        if not isinstance(value, int):
            raise ScenarioError(f"{where} must be a whole number, not {value!r}")
        return value
    return float(value)


def _range(where: str, value: Any) -> tuple[float, float]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, int | float) for v in value)
        or value[0] > value[1]
    ):
        raise ScenarioError(f"{where} must be [low, high], not {value!r}")
    return float(value[0]), float(value[1])


def parse_scenario(data: dict[str, Any], source: str = "<scenario>") -> Scenario:
    table = data.get("scenario")
    if not isinstance(table, dict):
        raise ScenarioError(f"{source}: missing [scenario] table")
    values: dict[str, Any] = {"source": source}
    for key, value in table.items():
        where = f"{source}: [scenario] {key}"
        if key == "name":
            if not isinstance(value, str) or not value:
                raise ScenarioError(f"{where} must be non-empty text")
            values[key] = value
        elif key == "layout":
            if value not in LAYOUTS:
                raise ScenarioError(f"{where} must be one of {', '.join(LAYOUTS)}")
            values[key] = value
        elif key == "stage":
            if value not in STAGES:
                raise ScenarioError(f"{where} must be one of {', '.join(map(repr, STAGES))}")
            values[key] = value
        elif key in _NUMBER_KEYS:
            values[key] = _number(where, value, _NUMBER_KEYS[key])
        else:
            raise ScenarioError(f"{where}: unknown key")
    values.setdefault("name", Path(source).stem)
    checks = (
        ("ports", 1, 40),
        ("budget_w", 0.0, 100_000.0),
        ("end_s", 1.0, 30 * 86400.0),
        ("poll_period_s", 0.01, 0.4),
        ("physics_dt_s", 0.01, 1.0),
        ("sample_period_s", 1.0, 600.0),
        ("curve_period_s", 0.5, 3600.0),
        ("sensor_range_factor", 1.0, 4.0),
        ("start_delay_s", 0.0, 3600.0),
        ("pickup_delay_s", 0.0, 86400.0),
    )
    for key, lo, hi in checks:
        if key in values and not lo <= values[key] <= hi:
            raise ScenarioError(f"{source}: [scenario] {key} must be from {lo:g} to {hi:g}")
    if "baud" in values:
        if values["baud"] < 0:
            raise ScenarioError(f"{source}: [scenario] baud must be positive (0: no wire time)")
        values["baud"] = values["baud"] or None
    seed = values.get("seed", 1)
    arrivals = generated_arrivals(source, data.get("arrivals"), seed)
    arrivals += fixed_arrivals(source, data.get("vehicle", []), seed)
    arrivals.sort(key=lambda a: (a.at_s, a.index))
    values["arrivals"] = tuple(replace(a, index=i) for i, a in enumerate(arrivals))
    return Scenario(**values)


def _models() -> set[str]:
    return {spec.id for spec in load_catalog()}


def generated_arrivals(source: str, table: Any, seed: int) -> list[Arrival]:
    """``count`` arrivals at uniform random times in the window (a Poisson process given its
    count), models drawn from the weighted mix, every draw from one generator seeded by ``seed``."""
    if table is None:
        return []
    if not isinstance(table, dict):
        raise ScenarioError(f"{source}: [arrivals] must be a table")
    known = {"count", "window_s", "soc_pct", "temperature_c", "stay_s", "mix"}
    for key in table:
        if key not in known:
            raise ScenarioError(f"{source}: [arrivals] {key}: unknown key")
    count = _number(f"{source}: [arrivals] count", table.get("count", 0), int)
    window = _number(f"{source}: [arrivals] window_s", table.get("window_s", 3600.0), float)
    if not 0 <= count <= 10_000 or window < 0:
        raise ScenarioError(f"{source}: [arrivals] needs 0 <= count <= 10000 and window_s >= 0")
    soc = _range(f"{source}: [arrivals] soc_pct", table.get("soc_pct", [10, 50]))
    temp = _range(f"{source}: [arrivals] temperature_c", table.get("temperature_c", [20, 25]))
    stay = table.get("stay_s")
    stay_range = _range(f"{source}: [arrivals] stay_s", stay) if stay is not None else None
    if soc[0] < 0 or soc[1] > 100:
        raise ScenarioError(f"{source}: [arrivals] soc_pct must lie within 0..100")
    mix = table.get("mix")
    if not isinstance(mix, dict) or not mix:
        raise ScenarioError(f"{source}: [arrivals.mix] must name catalog vehicles and weights")
    models = _models()
    names = sorted(mix)
    weights = []
    for name in names:
        if name not in models:
            raise ScenarioError(f"{source}: [arrivals.mix] {name!r} is not in the catalog")
        weights.append(_number(f"{source}: [arrivals.mix] {name}", mix[name], float))
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ScenarioError(f"{source}: [arrivals.mix] weights must be >= 0 with a positive sum")
    rng = random.Random(seed)
    times = sorted(rng.uniform(0.0, window) for _ in range(count))
    out = []
    for index, at in enumerate(times):
        model = rng.choices(names, weights)[0]
        out.append(
            Arrival(
                index=index,
                at_s=round(at, 3),
                model=model,
                soc_pct=round(rng.uniform(*soc), 1),
                temperature_c=round(rng.uniform(*temp), 1),
                stay_s=round(rng.uniform(*stay_range), 1) if stay_range else None,
                seed=rng.randrange(2**31),
            )
        )
    return out


def fixed_arrivals(source: str, entries: Any, seed: int) -> list[Arrival]:
    if not isinstance(entries, list):
        raise ScenarioError(f"{source}: [[vehicle]] must be an array of tables")
    models = _models()
    rng = random.Random(seed + 1)
    out = []
    known = {"at_s", "model", "soc_pct", "temperature_c", "stay_s", "fault", "fault_after_s"}
    faults = {kind.value for kind in FaultKind}
    for i, entry in enumerate(entries):
        where = f"{source}: vehicle #{i + 1}"
        if not isinstance(entry, dict):
            raise ScenarioError(f"{where} must be a table")
        for key in entry:
            if key not in known:
                raise ScenarioError(f"{where}: unknown key {key!r}")
        model = entry.get("model")
        if model not in models:
            raise ScenarioError(f"{where}: model {model!r} is not in the catalog")
        stay = entry.get("stay_s")
        fault = entry.get("fault")
        if fault is not None and fault not in faults:
            raise ScenarioError(f"{where}: fault must be one of {', '.join(sorted(faults))}")
        out.append(
            Arrival(
                index=10_000 + i,
                at_s=_number(f"{where}: at_s", entry.get("at_s", 0.0), float),
                model=model,
                soc_pct=_number(f"{where}: soc_pct", entry.get("soc_pct", 20.0), float),
                temperature_c=_number(
                    f"{where}: temperature_c", entry.get("temperature_c", 25.0), float
                ),
                stay_s=None if stay is None else _number(f"{where}: stay_s", stay, float),
                seed=rng.randrange(2**31),
                fault=fault,
                fault_after_s=_number(
                    f"{where}: fault_after_s", entry.get("fault_after_s", 60.0), float
                ),
            )
        )
    return out


def load_scenario(path: str | Path, *, seed: int | None = None) -> Scenario:
    """Read a scenario file; ``seed`` overrides the file's seed (new arrivals, same shape)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    if seed is not None:
        data.setdefault("scenario", {})
        if isinstance(data["scenario"], dict):
            data["scenario"]["seed"] = seed
    return parse_scenario(data, str(path))
