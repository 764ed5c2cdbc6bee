"""What a vehicle model is (its catalog entry), what it says it is (its BATT), and what it is doing.

The catalog (host/vehicle/catalog.toml), the scenario runner and the bench read these without the
pack's physics, which is :mod:`host.vehicle.model`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from host.vehicle.battery import CELL_LIMITS


class VehicleState(Enum):
    IDLE = "idle"
    CHARGING_CC = "charging (constant current)"
    CHARGING_CV = "charging (constant voltage)"
    FULL = "full"
    REFUSED_TEMP = "refusing: temperature outside the charging window"
    STOPPED_BY_BMS = "stopped by the BMS"


@dataclass(frozen=True, slots=True)
class VehicleSpec:
    id: str
    name: str
    maker: str
    vehicle_type: str
    chemistry: str
    cells_series: int
    cells_parallel: int
    cell_capacity_ah: float
    cell_resistance_ohm: float
    i_max: float
    i_min: float
    cutoff_a: float
    t_min_c: float
    t_max_c: float
    heat_capacity_j_per_k: float
    conductance_w_per_k: float
    imbalance_pct: float = 1.0
    capacity_wh_rated: float | None = None
    sources: tuple[str, ...] = ()
    notes: str = ""

    @property
    def capacity_ah(self) -> float:
        return self.cells_parallel * self.cell_capacity_ah

    @property
    def v_nom(self) -> float:
        return self.cells_series * (3.2 if self.chemistry == "LFP" else 3.6)

    @property
    def v_max(self) -> float:
        return self.cells_series * CELL_LIMITS[self.chemistry][0]

    @property
    def v_min(self) -> float:
        return self.cells_series * CELL_LIMITS[self.chemistry][2]

    @property
    def capacity_wh(self) -> float:
        return self.capacity_wh_rated or self.capacity_ah * self.v_nom

    def public_view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "maker": self.maker,
            "type": self.vehicle_type,
            "chemistry": self.chemistry,
            "cells": f"{self.cells_series}S{self.cells_parallel}P",
            "v_nom": round(self.v_nom, 1),
            "v_max": round(self.v_max, 1),
            "capacity_wh": round(self.capacity_wh),
            "i_max": self.i_max,
            "temperature_window_c": [self.t_min_c, self.t_max_c],
            "sources": list(self.sources),
        }


@dataclass(frozen=True, slots=True)
class DeclaredProfile:
    """What the vehicle announces in its BATT message (true, unless it is made to lie)."""

    chemistry: str
    cells_series: int
    v_nom: float
    v_max: float
    v_min: float
    capacity_wh: float
    i_max: float
    i_min: float
    t_min_c: float
    t_max_c: float
    i_end: float | None = None
    """Where its BMS ends the charge (BATT iend, PEV Link 1.2); None: not declared (1.1)."""
