"""The station's configuration: one TOML file, validated here, with defaults for the bench.

``[station]``, ``[web]``, ``[payment]`` and ``[safety]`` are the station's; ``[budget]``,
``[mqtt]`` and ``[metrics]`` connect it to the site (see :mod:`firmware.site_config`); ``[ocpp]``
is the central system uplink's (:mod:`firmware.ocpp.config`); ``[hal]`` and
``[[ports]]`` are handed to :mod:`hal.config`. Every error names the file and the key. The
settings the safety loop depends on have ranges, and the ones that depend on each other (the poll
period against the watchdog's hold time) are checked together.
"""

from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from firmware.ocpp.config import OcppConfig, parse_ocpp_config
from firmware.site_config import (
    BudgetConfig,
    ConfigError,
    MetricsConfig,
    MqttConfig,
    parse_budget,
    parse_metrics,
    parse_mqtt,
)
from firmware.station.safety import SafetyConfig
from hal.config import SENSOR_HEADROOM, HalConfig, default_bench_config, parse_hal_config
from hal.errors import ConfigError as HalConfigError
from hal.rfid import RfidConfig, parse_rfid

__all__ = ["ConfigError", "StationConfig", "load_config", "parse_config"]

PAYMENT_PROVIDERS = ("demo",)
DEFAULT_DB = "records.db"


@dataclass(frozen=True, slots=True)
class PaymentConfig:
    enabled: bool = False
    price_per_kwh: float = 0.40
    session_fee: float = 0.50
    preauth_amount: float = 10.00
    currency: str = "EUR"
    provider: str = "demo"
    provider_url: str = ""
    """The provider's API (hosted checkout); the bench starts its demo provider and sets it."""
    callback_secret: str = ""
    """Shared with the provider: its callbacks are signed with it (HMAC-SHA256)."""
    callback_url: str = ""
    """Where the provider calls back; the public URL's ``/api/payments/callback`` if empty."""


@dataclass(frozen=True, slots=True)
class StationConfig:
    name: str = "pev-charger bench"
    budget_w: float = 600.0
    poll_period_s: float = 0.05
    allocation_period_s: float = 1.0
    sample_period_s: float = 5.0
    auto_start: bool = False
    public_url: str | None = None
    operator_token: str | None = None
    db_path: str = DEFAULT_DB
    """A relative path is resolved at load: under ``$STATE_DIRECTORY`` when systemd sets it."""
    journal_path: str | None = None
    """Where writes wait while the records cannot take them; beside ``db_path`` by default. On
    another filesystem (e.g. /run) it also survives a full or read-only records disk."""
    sample_retention_days: float = 365.0
    """Meter samples older than this are deleted (hourly); 0 keeps them all. Sessions stay."""
    touchscreen_hosts: tuple[str, ...] = ("127.0.0.1", "::1")
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    max_streams: int = 1000
    """Live event streams open at once; more get 503 with Retry-After (the touchscreen never)."""
    max_requests: int = 1200
    """Requests in progress at once (an open stream is one) before more get 503 (not the
    touchscreen's)."""
    max_connections: int = 1500
    """Connections open at once (idle, half-open or busy); past it a new one gets 503 and is
    closed (never the touchscreen's). Kept well under the unit's LimitNOFILE (8192)."""
    idle_timeout_s: float = 15.0
    """A connection without a complete request for this long (at its start or between requests)
    is closed."""
    payment: PaymentConfig = field(default_factory=PaymentConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    ocpp: OcppConfig = field(default_factory=OcppConfig)
    hal: HalConfig = field(default_factory=default_bench_config)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    rfid: RfidConfig = field(default_factory=RfidConfig)
    source: str = "<defaults>"

    def state_dir(self) -> Path:
        """Where small state files live: beside the records."""
        return Path(self.db_path).parent

    def resolved_public_url(self) -> str:
        """The phone page's base URL: configured, or this machine's LAN address, never loopback."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{lan_address()}:{self.http_port}"


def lan_address() -> str:
    """The address other devices on the LAN reach us at (no packet is sent: UDP connect only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routing lookup only
            address = str(probe.getsockname()[0])
        except OSError:
            address = ""
    if not address or address.startswith("127."):
        try:
            address = socket.gethostbyname(socket.gethostname())
        except OSError:
            address = ""
    if not address or address.startswith("127."):
        return socket.gethostname()
    return address


_STATION_KEYS = {
    "name": str,
    "budget_w": float,
    "poll_period_s": float,
    "allocation_period_s": float,
    "sample_period_s": float,
    "auto_start": bool,
    "public_url": str,
    "operator_token": str,
    "db_path": str,
    "journal_path": str,
    "touchscreen_hosts": list,
    "sample_retention_days": float,
}
_RANGES = {
    "budget_w": (0.0, 100_000.0),
    "poll_period_s": (0.005, 1.0),
    "allocation_period_s": (0.1, 60.0),
    "sample_period_s": (0.5, 3600.0),
    "sample_retention_days": (0.0, 36_500.0),
}


def _typed(source: str, table: str, key: str, value: Any, kind: type) -> Any:
    where = f"{source}: [{table}] {key}"
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, not {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{where} must be a {kind.__name__}, not {type(value).__name__}")
    return value


def _section(source: str, data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: [{name}] must be a table")
    return value


def parse_config(
    data: dict[str, Any], source: str = "<config>", *, offline: bool = False
) -> StationConfig:
    """A station's configuration; ``offline`` checks it on another machine than the station."""
    known = {
        *("station", "web", "payment", "safety", "hal", "ports"),
        *("budget", "mqtt", "metrics", "ocpp", "rfid"),
    }
    for key in data:
        if key not in known:
            raise ConfigError(f"{source}: unknown top-level key '{key}'")
    values: dict[str, Any] = {"source": source}
    station = _section(source, data, "station")
    for key, value in station.items():
        if key not in _STATION_KEYS:
            raise ConfigError(f"{source}: [station] unknown key '{key}'")
        value = _typed(source, "station", key, value, _STATION_KEYS[key])
        if key in _RANGES:
            lo, hi = _RANGES[key]
            if not lo <= value <= hi:  # also refuses NaN
                raise ConfigError(f"{source}: [station] {key} = {value} is outside {lo}..{hi}")
        if key == "touchscreen_hosts":
            if not all(isinstance(h, str) for h in value):
                raise ConfigError(f"{source}: [station] touchscreen_hosts must list addresses")
            value = tuple(value)
        values[key] = value
    if "public_url" in values:
        parts = urlsplit(values["public_url"])
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"{source}: [station] public_url {values['public_url']!r} is not an http:// or "
                "https:// address"
            )
    if not values.get("operator_token"):
        values["operator_token"] = os.environ.get("PEV_OPERATOR_TOKEN") or None
    web = _section(source, data, "web")
    for key, value in web.items():
        if key == "host":
            values["http_host"] = _typed(source, "web", key, value, str)
        elif key == "port":
            port = _typed(source, "web", key, value, int)
            if not 1 <= port <= 65535:
                raise ConfigError(f"{source}: [web] port {port} is outside 1..65535")
            values["http_port"] = port
        elif key in ("max_streams", "max_requests"):
            limit = _typed(source, "web", key, value, int)
            if not 1 <= limit <= 100_000:
                raise ConfigError(f"{source}: [web] {key} {limit} is outside 1..100000")
            values[key] = limit
        elif key == "max_connections":
            limit = _typed(source, "web", key, value, int)
            if not 16 <= limit <= 6000:  # the unit's LimitNOFILE is 8192; records and ports too
                raise ConfigError(f"{source}: [web] max_connections {limit} is outside 16..6000")
            values[key] = limit
        elif key == "idle_timeout_s":
            seconds = _typed(source, "web", key, value, float)
            if not 1.0 <= seconds <= 600.0:
                raise ConfigError(f"{source}: [web] idle_timeout_s {seconds} is outside 1..600")
            values[key] = seconds
        else:
            raise ConfigError(f"{source}: [web] unknown key '{key}'")
    payment = _dataclass_section(source, data, "payment", PaymentConfig)
    if payment.provider not in PAYMENT_PROVIDERS:
        names = ", ".join(PAYMENT_PROVIDERS)
        raise ConfigError(
            f"{source}: [payment] provider '{payment.provider}' is not one of {names}"
        )
    for key in ("price_per_kwh", "session_fee", "preauth_amount"):
        if not 0 <= getattr(payment, key) <= 1000:
            raise ConfigError(f"{source}: [payment] {key} must be between 0 and 1000")
    if payment.enabled and not (payment.provider_url and len(payment.callback_secret) >= 16):
        raise ConfigError(
            f"{source}: [payment] needs provider_url (the provider's API) and callback_secret "
            "(16 characters or more, shared with the provider)"
        )
    values["payment"] = payment
    values["safety"] = _dataclass_section(source, data, "safety", SafetyConfig)
    values["mqtt"] = parse_mqtt(source, _section(source, data, "mqtt"))
    values["budget"] = parse_budget(
        source, _section(source, data, "budget"), values.get("budget_w", 600.0), values["mqtt"]
    )
    values["metrics"] = parse_metrics(source, _section(source, data, "metrics"))
    try:
        ocpp = parse_ocpp_config(_section(source, data, "ocpp"))
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    values["ocpp"] = replace(ocpp, db_path=state_path(ocpp.db_path))
    if values["budget"].source == "ocpp" and not ocpp.enabled:
        raise ConfigError(f'{source}: [budget] source = "ocpp" needs [ocpp] enabled = true')
    hal_data: dict[str, Any] = {k: data[k] for k in ("hal", "ports") if k in data}
    values["hal"] = parse_hal_config(hal_data, source, offline=offline)
    port_ids = [p.id for p in values["hal"].ports]
    try:
        values["rfid"] = parse_rfid(source, _section(source, data, "rfid"), port_ids)
    except HalConfigError as exc:
        raise ConfigError(str(exc)) from None
    values["db_path"] = state_path(values.get("db_path", DEFAULT_DB))
    if values.get("journal_path"):
        values["journal_path"] = state_path(values["journal_path"])
    config = StationConfig(**values)
    _check_safety(source, config.safety, config.poll_period_s, config.hal)
    return config


SAFETY_RANGES: dict[str, tuple[float, float]] = {
    "overcurrent_margin_a": (0.0, 2.0),
    "overcurrent_margin_frac": (0.0, 0.25),
    "overcurrent_debounce_s": (0.0, 1.0),
    "hard_current_factor": (1.05, SENSOR_HEADROOM),
    "overvoltage_margin_v": (0.0, 2.0),
    "overvoltage_margin_frac": (0.0, 0.05),
    "verify_margin_v": (0.1, 5.0),
    "verify_margin_frac": (0.0, 0.1),
    "disconnect_current_a": (0.0, 1.0),
    "disconnect_debounce_s": (0.0, 5.0),
    "mismatch_ohm": (0.0, 1.0),
    "mismatch_debounce_s": (0.0, 10.0),
    "thermal_derate_start_c": (0.0, 20.0),
    "thermal_hysteresis_c": (0.5, 10.0),
}
"""Bounds for every ``[safety]`` setting. The hard over-current factor stops at the sensor's
headroom: above it an over-current would read as the sensor's overflow, not as a value."""


def _check_safety(source: str, safety: SafetyConfig, poll_s: float, hal: HalConfig) -> None:
    for key, (lo, hi) in SAFETY_RANGES.items():
        value = getattr(safety, key)
        if not lo <= value <= hi:
            raise ConfigError(f"{source}: [safety] {key} = {value:g} is outside {lo:g}..{hi:g}")
    if poll_s > hal.watchdog_hold_s / 2 + 1e-9:
        raise ConfigError(
            f"{source}: [station] poll_period_s = {poll_s:g} is more than half the watchdog's "
            f"hold time ([hal] watchdog_hold_s = {hal.watchdog_hold_s:g}): the switches would "
            "drop between two kicks"
        )
    for key in ("overcurrent_debounce_s", "disconnect_debounce_s"):
        if 0 < getattr(safety, key) < poll_s:
            raise ConfigError(
                f"{source}: [safety] {key} = {getattr(safety, key):g} is shorter than "
                f"poll_period_s = {poll_s:g}"
            )


def state_path(path: str) -> str:
    """An absolute path for the records: a relative one goes under ``$STATE_DIRECTORY`` (systemd's
    StateDirectory=) when set, else under the current directory as it is now."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return str(candidate)
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    base = Path(state) if state else Path.cwd()
    return str(base / candidate)


def _dataclass_section(source: str, data: dict[str, Any], name: str, cls: type[Any]) -> Any:
    section = _section(source, data, name)
    types = {f.name: f.type for f in fields(cls)}
    kinds = {"bool": bool, "float": float, "str": str, "int": int}
    out: dict[str, Any] = {}
    for key, value in section.items():
        if key not in types:
            raise ConfigError(f"{source}: [{name}] unknown key '{key}'")
        kind = kinds.get(str(types[key]), float)
        value = _typed(source, name, key, value, kind)
        if kind is float and value < 0:
            raise ConfigError(f"{source}: [{name}] {key} must not be negative")
        out[key] = value
    return cls(**out)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_config(path: str | Path, *, offline: bool = False) -> StationConfig:
    path = Path(path)
    return parse_config(_read_toml(path), str(path), offline=offline)


def load_ocpp_section(path: str | Path) -> OcppConfig:
    """Only ``[ocpp]`` from a file: how the bench joins a central system (``--ocpp-config``)."""
    path = Path(path)
    try:
        ocpp = parse_ocpp_config(_section(str(path), _read_toml(path), "ocpp"))
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return replace(ocpp, db_path=state_path(ocpp.db_path))
