"""The ``[ocpp]`` configuration section: where the central system is and what to send it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MEASURANDS = (
    "Energy.Active.Import.Register",
    "Power.Active.Import",
    "Current.Import",
    "Voltage",
    "SoC",
)
"""What the station can measure per connector; the configuration picks from these."""


class OcppConfigError(ValueError):
    """A bad ``[ocpp]`` value; the message names the key."""


@dataclass(frozen=True, slots=True)
class OcppConfig:
    enabled: bool = False
    url: str = ""
    """The central system's endpoint without the charge point id: ws://host:port/path or wss://."""
    charge_point_id: str = ""
    password: str | None = None
    """HTTP Basic password (security profile 1 over ws://, profile 2 over wss://)."""
    ca_file: str | None = None
    """Extra certificate authority for wss:// (a CSMS with a private certificate)."""
    authorize: bool = True
    """Ask the central system (Authorize) about sessions started at the station."""
    local_authorize_offline: bool = True
    """Offline, a tag the authorisation cache holds as Accepted may charge."""
    allow_offline_unknown: bool = True
    """Offline, a tag the cache does not know (every QR session's) may charge."""
    meter_interval_s: float = 60.0
    measurands: tuple[str, ...] = MEASURANDS
    heartbeat_s: float = 300.0
    """Until the central system names its own interval in the boot reply."""
    db_path: str = "var/ocpp.db"
    vendor: str = "pev-charger"
    model: str = "pev-charger"
    response_timeout_s: float = 30.0
    backoff_min_s: float = 1.0
    backoff_max_s: float = 300.0

    @property
    def endpoint(self) -> str:
        return f"{self.url.rstrip('/')}/{self.charge_point_id}"


_KINDS: dict[str, type] = {
    "enabled": bool,
    "url": str,
    "charge_point_id": str,
    "password": str,
    "ca_file": str,
    "authorize": bool,
    "local_authorize_offline": bool,
    "allow_offline_unknown": bool,
    "meter_interval_s": float,
    "measurands": list,
    "heartbeat_s": float,
    "db_path": str,
    "vendor": str,
    "model": str,
    "response_timeout_s": float,
    "backoff_min_s": float,
    "backoff_max_s": float,
}
_RANGES = {
    "meter_interval_s": (1.0, 86_400.0),
    "heartbeat_s": (1.0, 86_400.0),
    "response_timeout_s": (1.0, 300.0),
    "backoff_min_s": (0.1, 3600.0),
    "backoff_max_s": (0.1, 86_400.0),
}


def parse_ocpp_config(section: dict[str, Any]) -> OcppConfig:
    """Check every key of ``[ocpp]``; an enabled uplink needs a URL and a charge point id."""
    values: dict[str, Any] = {}
    for key, raw in section.items():
        kind = _KINDS.get(key)
        if kind is None:
            raise OcppConfigError(f"[ocpp] unknown key '{key}'")
        if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
            raw = float(raw)
        if not isinstance(raw, kind) or (kind is not bool and isinstance(raw, bool)):
            raise OcppConfigError(f"[ocpp] {key} must be a {kind.__name__}, not {raw!r}")
        value: Any = raw
        if key in _RANGES:
            lo, hi = _RANGES[key]
            if not lo <= value <= hi:
                raise OcppConfigError(f"[ocpp] {key} = {value} is outside {lo:g}..{hi:g}")
        if key == "measurands":
            unknown = [m for m in value if m not in MEASURANDS]
            if unknown or not all(isinstance(m, str) for m in value):
                raise OcppConfigError(
                    f"[ocpp] measurands: {unknown} not among {', '.join(MEASURANDS)}"
                )
            value = tuple(value)
        values[key] = value
    config = OcppConfig(**values)
    if config.enabled:
        parts = urlsplit(config.url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise OcppConfigError(
                f"[ocpp] url must be ws://host/... or wss://host/...: {config.url!r}"
            )
        if not config.charge_point_id or any(c in config.charge_point_id for c in "/?#: "):
            raise OcppConfigError("[ocpp] charge_point_id must be set, without / ? # : or spaces")
        if config.password is not None and not config.password:
            raise OcppConfigError("[ocpp] password must not be empty (leave it out for none)")
        if config.backoff_max_s < config.backoff_min_s:
            raise OcppConfigError("[ocpp] backoff_max_s must not be below backoff_min_s")
    return config
