"""The catalog of simulated vehicle classes (catalog.toml beside this file)."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from host.vehicle.battery import CELL_LIMITS
from host.vehicle.spec import VehicleSpec

CATALOG_PATH = Path(__file__).with_name("catalog.toml")


def _spec(entry: dict[str, Any]) -> VehicleSpec:
    series, parallel = entry["cells"]
    t_min, t_max = entry["temperature_c"]
    if entry["chemistry"] not in CELL_LIMITS:
        raise ValueError(f"{entry['id']}: unknown chemistry {entry['chemistry']}")
    return VehicleSpec(
        id=entry["id"],
        name=entry["name"],
        maker=entry["maker"],
        vehicle_type=entry["type"],
        chemistry=entry["chemistry"],
        cells_series=int(series),
        cells_parallel=int(parallel),
        cell_capacity_ah=float(entry["cell_capacity_ah"]),
        cell_resistance_ohm=float(entry["cell_resistance_ohm"]),
        i_max=float(entry["i_max"]),
        i_min=float(entry["i_min"]),
        cutoff_a=float(entry["cutoff_a"]),
        t_min_c=float(t_min),
        t_max_c=float(t_max),
        heat_capacity_j_per_k=float(entry["heat_capacity_j_per_k"]),
        conductance_w_per_k=float(entry["conductance_w_per_k"]),
        capacity_wh_rated=entry.get("capacity_wh"),
        sources=tuple(entry.get("sources", ())),
        notes=entry.get("notes", ""),
    )


@cache
def load_catalog(path: Path = CATALOG_PATH) -> tuple[VehicleSpec, ...]:
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    return tuple(_spec(entry) for entry in data["vehicle"])


def find(vehicle_id: str) -> VehicleSpec:
    for spec in load_catalog():
        if spec.id == vehicle_id:
            return spec
    raise KeyError(vehicle_id)
