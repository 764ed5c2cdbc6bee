"""Home Assistant MQTT discovery: one device per station, entities for the station and each port.

Topics follow ``<discovery_prefix>/<component>/<node_id>/<object_id>/config`` with retained JSON
payloads (HA's MQTT integration documentation); every entity has a ``unique_id`` and shares the
station's ``device`` and its availability topic (``online`` / ``offline``, the last will). State
is published as one JSON object per station and per port; entities pick their value with a
``value_template``. The budget is a ``number`` (with a ``command_topic``) only when the operator
allows HA to set it; otherwise a ``sensor``, and the ``number``'s config is cleared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from firmware.site_config import MqttConfig

Payload = dict[str, Any]
FAULT_ATTRIBUTES = "{{ {'fault': value_json.fault_text} | tojson }}"


def package_version() -> str:
    try:
        return metadata.version("pev-charger")
    except metadata.PackageNotFoundError:
        return "unknown"


def node_id(name: str) -> str:
    """A topic- and id-safe name for the station: lower case, digits and underscores."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return slug or "station"


@dataclass(frozen=True, slots=True)
class Topics:
    base: str
    node: str
    prefix: str

    @classmethod
    def of(cls, config: MqttConfig, station_name: str) -> Topics:
        return cls(config.base_topic, node_id(station_name), config.discovery_prefix)

    @property
    def root(self) -> str:
        return f"{self.base}/{self.node}"

    @property
    def availability(self) -> str:
        return f"{self.root}/availability"

    @property
    def station(self) -> str:
        return f"{self.root}/station"

    def port(self, port_id: int) -> str:
        return f"{self.root}/port/{port_id}"

    @property
    def budget_set(self) -> str:
        return f"{self.root}/budget/set"

    @property
    def ha_status(self) -> str:
        return f"{self.prefix}/status"

    def config(self, component: str, object_id: str) -> str:
        return f"{self.prefix}/{component}/{self.node}/{object_id}/config"


def _device(topics: Topics, name: str, version: str) -> Payload:
    return {
        "identifiers": [f"pev_charger_{topics.node}"],
        "name": name,
        "manufacturer": "pev-charger",
        "model": "Charging station for portable electric vehicles",
        "sw_version": version,
    }


def _entity(
    topics: Topics, device: Payload, object_id: str, name: str, state_topic: str, key: str
) -> Payload:
    return {
        "name": name,
        "unique_id": f"pev_charger_{topics.node}_{object_id}",
        "state_topic": state_topic,
        "value_template": f"{{{{ value_json.{key} }}}}",
        "availability_topic": topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device,
    }


def _power(entity: Payload) -> Payload:
    return {
        **entity,
        "device_class": "power",
        "unit_of_measurement": "W",
        "state_class": "measurement",
    }


def discovery(
    topics: Topics,
    station_name: str,
    port_ids: list[int],
    *,
    allow_budget_set: bool,
    max_budget_w: float,
    version: str | None = None,
) -> list[tuple[str, Payload | None]]:
    """Every config message, as (topic, payload); a None payload clears a config HA may hold."""
    device = _device(topics, station_name, version or package_version())
    st = topics.station
    out: list[tuple[str, Payload | None]] = []

    def add(component: str, object_id: str, payload: Payload) -> None:
        out.append((topics.config(component, object_id), payload))

    add(
        "sensor",
        "measured_power",
        _power(_entity(topics, device, "measured_power", "Power", st, "measured_w")),
    )
    add(
        "sensor",
        "budget_source",
        _entity(topics, device, "budget_source", "Budget source", st, "budget_source"),
    )
    stale = _entity(topics, device, "meter_stale", "Site meter reading missing", st, "meter_stale")
    stale.update(
        device_class="problem",
        payload_on="ON",
        payload_off="OFF",
        value_template="{{ 'ON' if value_json.meter_stale else 'OFF' }}",
    )
    add("binary_sensor", "meter_stale", stale)
    budget = _power(_entity(topics, device, "budget", "Budget", st, "budget_w"))
    if allow_budget_set:
        budget.pop("state_class")
        budget.update(command_topic=topics.budget_set, min=0, max=max_budget_w, step=10, mode="box")
        add("number", "budget", budget)
        out.append((topics.config("sensor", "budget"), None))
    else:
        add("sensor", "budget", budget)
        out.append((topics.config("number", "budget"), None))
    for pid in port_ids:
        pt = topics.port(pid)
        p = f"port{pid}"
        add(
            "sensor",
            f"{p}_state",
            _entity(topics, device, f"{p}_state", f"Port {pid} state", pt, "state"),
        )
        add(
            "sensor",
            f"{p}_power",
            _power(_entity(topics, device, f"{p}_power", f"Port {pid} power", pt, "power_w")),
        )
        add(
            "sensor",
            f"{p}_grant",
            _power(
                _entity(topics, device, f"{p}_grant", f"Port {pid} granted power", pt, "grant_w")
            ),
        )
        energy = _entity(
            topics, device, f"{p}_energy", f"Port {pid} session energy", pt, "energy_wh"
        )
        energy.update(
            device_class="energy", unit_of_measurement="Wh", state_class="total_increasing"
        )
        add("sensor", f"{p}_energy", energy)
        soc = _entity(topics, device, f"{p}_soc", f"Port {pid} state of charge", pt, "soc_pct")
        soc.update(device_class="battery", unit_of_measurement="%", state_class="measurement")
        add("sensor", f"{p}_soc", soc)
        fault = _entity(topics, device, f"{p}_fault", f"Port {pid} fault", pt, "fault")
        fault.update(
            device_class="problem",
            payload_on="ON",
            payload_off="OFF",
            value_template="{{ 'ON' if value_json.fault else 'OFF' }}",
            json_attributes_topic=pt,
            json_attributes_template=FAULT_ATTRIBUTES,
        )
        add("binary_sensor", f"{p}_fault", fault)
    return out


def station_state(snapshot: dict[str, Any], budget: dict[str, Any] | None) -> Payload:
    return {
        "budget_w": snapshot["budget_w"],
        "measured_w": snapshot["measured_w"],
        "allocated_w": snapshot["allocated_w"],
        "budget_source": budget["active"] if budget else "static",
        "meter_stale": bool(budget and budget.get("stale")),
        "site_w": budget.get("site_w") if budget else None,
    }


def port_state(view: dict[str, Any]) -> Payload:
    vehicle = view.get("vehicle") or {}
    session = view.get("session") or {}
    fault = view.get("fault")
    return {
        "state": view["state"],
        "state_text": view.get("state_text"),
        "power_w": view["measured"]["watts"],
        "grant_w": view["granted"]["watts"],
        "energy_wh": session.get("energy_wh", 0.0) if session.get("live") else 0.0,
        "soc_pct": vehicle.get("soc_pct"),
        "fault": fault["code"] if fault else None,
        "fault_text": fault["text"] if fault else None,
    }
