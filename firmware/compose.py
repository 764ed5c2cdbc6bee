"""One way to build a station from its hardware: the daemon, the bench, the scenario runner, the
benchmarks and the tests all call :func:`build_station`, so they run the same composition."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from firmware.events import EventHub
from firmware.station.allocator import Policy
from firmware.station.port import PortSpec
from firmware.station.sessions import Recorder, SampleFactory
from firmware.station.station import Station, StationSettings
from firmware.store import SampleRecord
from hal.clock import Clock
from hal.config import HalConfig, PortConfig
from hal.factory import Hardware


def make_sample(
    t: float, volts: float, amps: float, watts: float, energy_wh: float, soc: float | None
) -> SampleRecord:
    """One point of a session's curve as the records keep it."""
    return SampleRecord(
        t=t, voltage_v=volts, current_a=amps, power_w=watts, energy_wh=energy_wh, soc_pct=soc
    )


def port_spec(port: PortConfig) -> PortSpec:
    """What a configured port can do, as the station sees it."""
    return PortSpec(
        port_id=port.id,
        max_current_a=port.max_current_a,
        v_min_v=port.min_voltage_v,
        v_max_v=port.max_voltage_v,
        max_power_w=port.max_current_a * port.max_voltage_v,
    )


def settings_with(base: StationSettings, **overrides: Any) -> StationSettings:
    known = {f.name for f in fields(StationSettings)}
    unknown = set(overrides) - known
    if unknown:
        raise TypeError(f"unknown station settings: {', '.join(sorted(unknown))}")
    values = {f.name: getattr(base, f.name) for f in fields(StationSettings)}
    values.update(overrides)
    return StationSettings(**values)


def build_station(
    settings: StationSettings,
    hal: HalConfig,
    hardware: Hardware,
    clock: Clock,
    *,
    recorder: Recorder | None = None,
    sample_factory: SampleFactory | None = make_sample,
    policy: Policy | None = None,
    events: EventHub | None = None,
) -> Station:
    """The station on this hardware, one port per configured port, in port order."""
    ports = sorted(hal.ports, key=lambda p: p.id)
    return Station(
        settings,
        clock,
        [(port_spec(p), hardware.ports[p.id]) for p in ports],
        watchdog=hardware.watchdog,
        recorder=recorder,
        sample_factory=sample_factory if recorder is not None else None,
        policy=policy,
        events=events,
    )
