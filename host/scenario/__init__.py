"""Headless scenarios: vehicles arriving at a station over hours, run in simulated time.

``pev-scenario bench/scenario-allocation.toml`` runs a scenario file against the real station code
(see :mod:`host.scenario.runner`); :func:`run_scenario` does the same from Python, and
:func:`run_fast_scenario` the same with the fast runner (:mod:`host.scenario.fast`).
"""

from host.scenario.bound import physical_bound
from host.scenario.fast import run_fast_scenario
from host.scenario.result import OUTCOMES, ScenarioResult, VehicleRecord
from host.scenario.runner import POLICIES, run_scenario, simulate
from host.scenario.spec import Arrival, Scenario, ScenarioError, load_scenario, parse_scenario

__all__ = [
    "OUTCOMES",
    "POLICIES",
    "Arrival",
    "Scenario",
    "ScenarioError",
    "ScenarioResult",
    "VehicleRecord",
    "load_scenario",
    "parse_scenario",
    "physical_bound",
    "run_fast_scenario",
    "run_scenario",
    "simulate",
]
