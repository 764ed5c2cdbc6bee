"""The site sections of the configuration: ``[budget]``, ``[mqtt]`` and ``[metrics]``.

Kept apart from :mod:`firmware.config` so each stays small; :mod:`firmware.config` reads them into
:class:`~firmware.config.StationConfig`. Every error names the file, the table and the key.

```toml
[budget]
source = "modbus"          # static | modbus | mqtt | ocpp
max_import_w = 3500        # what the building's connection may import
fallback_w = 200           # the budget while the reading is stale or missing
stale_after_s = 10
[budget.modbus]
meter = "sdm630"           # sdm630 | sdm120 | sunspec
host = "192.168.1.40"
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


BUDGET_SOURCES = ("static", "modbus", "mqtt", "ocpp")
BUDGET_MODES = ("import", "solar")
METERS = ("sdm630", "sdm120", "sunspec")


@dataclass(frozen=True, slots=True)
class ModbusMeterConfig:
    meter: str = "sdm630"
    host: str | None = None
    port: int = 502
    serial_port: str | None = None
    baudrate: int = 9600
    device_id: int = 1
    timeout_s: float = 1.0
    sunspec_base: int = 40000


@dataclass(frozen=True, slots=True)
class MqttMeterConfig:
    topic: str = ""
    key: str | None = None
    """Dotted path into a JSON payload (``ENERGY.Power`` for Tasmota); none for a plain number."""
    scale: float = 1.0
    """Multiplies the value: 1000 for a topic in kW; -1 for one that counts export as positive."""


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    source: str = "static"
    mode: str = "import"
    """``import``: max_import_w minus the site's other load; ``solar``: the surplus only."""
    max_import_w: float = 0.0
    fallback_w: float = 0.0
    stale_after_s: float = 10.0
    poll_s: float = 1.0
    min_w: float = 0.0
    max_w: float = 600.0
    raise_dwell_s: float = 30.0
    smoothing_s: float = 10.0
    margin_w: float = 0.0
    base_load_w: float = 0.0
    """For an inverter-only site (SunSpec): the house load assumed besides the station."""
    state_file: str | None = None
    modbus: ModbusMeterConfig = field(default_factory=ModbusMeterConfig)
    mqtt: MqttMeterConfig = field(default_factory=MqttMeterConfig)


@dataclass(frozen=True, slots=True)
class MqttConfig:
    enabled: bool = False
    """Publish the station's state (and Home Assistant discovery) to the broker."""
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    client_id: str | None = None
    base_topic: str = "pev-charger"
    discovery_prefix: str = "homeassistant"
    allow_budget_set: bool = False
    """Home Assistant may set the budget (a ``number`` entity) only when this is true."""
    publish_period_s: float = 10.0


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    enabled: bool = True
    host: str | None = None
    """With ``port``: a listener of its own, no token (bind it to loopback or a management LAN)."""
    port: int | None = None
    late_kick_s: float | None = None


def _read(
    source: str, table: str, section: dict[str, Any], spec: dict[str, type]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in section.items():
        where = f"{source}: [{table}] {key}"
        if key not in spec:
            names = ", ".join(sorted(spec))
            raise ConfigError(f"{source}: [{table}] unknown key '{key}' (known: {names})")
        kind = spec[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is dict:
            if not isinstance(value, dict):
                raise ConfigError(f"{where} must be a table")
        elif kind is bool and not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, not {value!r}")
        elif kind is not bool and (isinstance(value, bool) or not isinstance(value, kind)):
            raise ConfigError(f"{where} must be a {kind.__name__}, not {value!r}")
        out[key] = value
    return out


def _check(ok: bool, source: str, table: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{source}: [{table}] {message}")


def parse_budget(
    source: str, section: dict[str, Any], station_budget_w: float, mqtt: MqttConfig
) -> BudgetConfig:
    spec: dict[str, type] = {
        "source": str, "mode": str, "max_import_w": float, "fallback_w": float,
        "stale_after_s": float, "poll_s": float, "min_w": float, "max_w": float,
        "raise_dwell_s": float, "smoothing_s": float, "margin_w": float, "base_load_w": float,
        "state_file": str, "modbus": dict, "mqtt": dict,
    }  # fmt: skip
    values = _read(source, "budget", section, spec)
    values.setdefault("max_w", station_budget_w)
    modbus = _read(
        source,
        "budget.modbus",
        values.pop("modbus", {}),
        {
            "meter": str,
            "host": str,
            "port": int,
            "serial_port": str,
            "baudrate": int,
            "device_id": int,
            "timeout_s": float,
            "sunspec_base": int,
        },
    )
    meter = _read(
        source,
        "budget.mqtt",
        values.pop("mqtt", {}),
        {"topic": str, "key": str, "scale": float},
    )
    config = BudgetConfig(
        **values, modbus=ModbusMeterConfig(**modbus), mqtt=MqttMeterConfig(**meter)
    )
    t = "budget"
    _check(
        config.source in BUDGET_SOURCES,
        source,
        t,
        f"source '{config.source}' is not one of {', '.join(BUDGET_SOURCES)}",
    )
    _check(
        config.mode in BUDGET_MODES,
        source,
        t,
        f"mode '{config.mode}' is not one of {', '.join(BUDGET_MODES)}",
    )
    for key in ("max_import_w", "fallback_w", "min_w", "max_w", "margin_w", "base_load_w"):
        _check(0 <= getattr(config, key) <= 100_000, source, t, f"{key} must be 0..100000 W")
    _check(config.min_w <= config.max_w, source, t, "min_w must not be above max_w")
    _check(
        config.min_w <= config.fallback_w <= config.max_w,
        source,
        t,
        "fallback_w must lie between min_w and max_w",
    )
    _check(0.1 <= config.poll_s <= 60, source, t, "poll_s must be 0.1..60 s")
    _check(
        config.poll_s < config.stale_after_s <= 600,
        source,
        t,
        "stale_after_s must be above poll_s and at most 600 s",
    )
    _check(0 <= config.raise_dwell_s <= 3600, source, t, "raise_dwell_s must be 0..3600 s")
    _check(0 <= config.smoothing_s <= 3600, source, t, "smoothing_s must be 0..3600 s")
    if config.source in ("modbus", "mqtt") and config.mode == "import":
        _check(
            config.max_import_w > 0,
            source,
            t,
            "max_import_w is needed with a meter in import mode (what the connection allows)",
        )
    if config.source == "modbus":
        m = config.modbus
        tm = "budget.modbus"
        _check(
            m.meter in METERS, source, tm, f"meter '{m.meter}' is not one of {', '.join(METERS)}"
        )
        _check(
            (m.host is None) != (m.serial_port is None),
            source,
            tm,
            "give either host (Modbus TCP) or serial_port (Modbus RTU), not both",
        )
        _check(1 <= m.port <= 65535, source, tm, f"port {m.port} is outside 1..65535")
        _check(0 <= m.device_id <= 247, source, tm, "device_id must be 0..247")
        _check(
            0.05 <= m.timeout_s < config.stale_after_s,
            source,
            tm,
            "timeout_s must be at least 0.05 s and below stale_after_s",
        )
        if m.meter == "sunspec":
            _check(
                config.mode == "solar" or config.max_import_w > 0,
                source,
                tm,
                'a SunSpec inverter gives solar power: use mode = "solar"',
            )
    if config.source == "mqtt":
        _check(
            bool(config.mqtt.topic),
            source,
            "budget.mqtt",
            "topic is needed (the topic carrying the site's import power)",
        )
        _check(config.mqtt.scale != 0, source, "budget.mqtt", "scale must not be 0")
    return config


def parse_mqtt(source: str, section: dict[str, Any]) -> MqttConfig:
    spec: dict[str, type] = {
        "enabled": bool, "host": str, "port": int, "username": str, "password": str, "tls": bool,
        "ca_file": str, "client_id": str, "base_topic": str, "discovery_prefix": str,
        "allow_budget_set": bool, "publish_period_s": float,
    }  # fmt: skip
    config = MqttConfig(**_read(source, "mqtt", section, spec))
    _check(1 <= config.port <= 65535, source, "mqtt", f"port {config.port} is outside 1..65535")
    for key in ("base_topic", "discovery_prefix"):
        value = getattr(config, key)
        _check(
            bool(value) and not any(c in value for c in "#+") and not value.endswith("/"),
            source,
            "mqtt",
            f"{key} must be a topic without wildcards or a trailing /",
        )
    _check(
        config.password is None or config.username is not None,
        source,
        "mqtt",
        "password needs a username",
    )
    _check(
        1 <= config.publish_period_s <= 3600, source, "mqtt", "publish_period_s must be 1..3600 s"
    )
    return config


def parse_metrics(source: str, section: dict[str, Any]) -> MetricsConfig:
    spec: dict[str, type] = {"enabled": bool, "host": str, "port": int, "late_kick_s": float}
    config = MetricsConfig(**_read(source, "metrics", section, spec))
    if config.port is not None:
        _check(
            1 <= config.port <= 65535, source, "metrics", f"port {config.port} is outside 1..65535"
        )
    _check(
        config.host is None or config.port is not None,
        source,
        "metrics",
        "host needs a port (a listener of its own)",
    )
    if config.late_kick_s is not None:
        _check(0 < config.late_kick_s <= 10, source, "metrics", "late_kick_s must be 0..10 s")
    return config
