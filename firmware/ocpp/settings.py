"""The configuration keys the station supports (OCPP 1.6 §9.1), kept across restarts.

Keys the central system changes are stored in the uplink's own database, so they outlive a
restart, as §9.1 asks; the ``[ocpp]`` section gives their starting values.
"""

from __future__ import annotations

import json
from typing import Any

from firmware.ocpp.config import MEASURANDS, OcppConfig
from firmware.ocpp.outbox import Outbox
from firmware.ocpp.profiles import MAX_PERIODS, MAX_PROFILES, MAX_STACK_LEVEL, Installed

WRITABLE = (
    "HeartbeatInterval",
    "MeterValueSampleInterval",
    "MeterValuesSampledData",
    "StopTransactionOnInvalidId",
    "AuthorizationCacheEnabled",
    "LocalAuthorizeOffline",
    "LocalPreAuthorize",
    "AllowOfflineTxForUnknownId",
)
FLAGS = {
    "StopTransactionOnInvalidId": "stop_on_invalid_id",
    "AuthorizationCacheEnabled": "cache_enabled",
    "LocalAuthorizeOffline": "local_authorize_offline",
    "LocalPreAuthorize": "local_pre_authorize",
    "AllowOfflineTxForUnknownId": "allow_offline_unknown",
}
"""The true/false keys and the attribute each sets."""


class Settings:
    def __init__(self, config: OcppConfig, outbox: Outbox, connectors: int) -> None:
        self._outbox = outbox
        self.connectors = connectors
        self.heartbeat_s = config.heartbeat_s
        self.meter_interval_s = config.meter_interval_s
        self.measurands = config.measurands
        self.stop_on_invalid_id = True
        self.cache_enabled = True
        self.local_authorize_offline = config.local_authorize_offline
        self.local_pre_authorize = False
        self.allow_offline_unknown = config.allow_offline_unknown
        self.unavailable: set[int] = set()
        self._stored: dict[str, str] = {}

    async def load(self) -> None:
        self._stored = await self._outbox.settings()
        for key in WRITABLE:
            if key in self._stored:
                self._apply(key, self._stored[key])
        self.unavailable = set(json.loads(self._stored.get("unavailable", "[]")))

    def stored(self, key: str) -> str | None:
        """A value kept in the uplink's database at the last load."""
        return self._stored.get(key)

    def available(self, connector: int) -> bool:
        return connector not in self.unavailable

    async def set_available(self, connector: int, on: bool) -> None:
        (self.unavailable.discard if on else self.unavailable.add)(connector)
        await self._outbox.put_setting("unavailable", json.dumps(sorted(self.unavailable)))

    def saved_profiles(self) -> list[Installed]:
        raw = json.loads(self._stored.get("profiles", "[]"))
        return [Installed(p["connector"], p["profile"], p["installed_at"]) for p in raw]

    async def save_profiles(self, profiles: list[Installed]) -> None:
        kept = [
            {"connector": p.connector, "profile": p.profile, "installed_at": p.installed_at}
            for p in profiles
            if p.purpose != "TxProfile"
        ]
        await self._outbox.put_setting("profiles", json.dumps(kept))

    def values(self) -> dict[str, tuple[str, bool]]:
        """Every key the station reports: value and whether it is read-only."""

        def flag(on: bool) -> str:
            return "true" if on else "false"

        return {
            "HeartbeatInterval": (str(int(self.heartbeat_s)), False),
            "MeterValueSampleInterval": (str(int(self.meter_interval_s)), False),
            "MeterValuesSampledData": (",".join(self.measurands), False),
            **{key: (flag(getattr(self, attr)), False) for key, attr in FLAGS.items()},
            "NumberOfConnectors": (str(self.connectors), True),
            "AuthorizeRemoteTxRequests": ("false", True),
            "StopTransactionOnEVSideDisconnect": ("true", True),
            "UnlockConnectorOnEVSideDisconnect": ("false", True),
            "ConnectorPhaseRotation": ("NotApplicable", True),
            "ClockAlignedDataInterval": ("0", True),
            "MeterValuesAlignedData": ("", True),
            "StopTxnSampledData": ("Energy.Active.Import.Register", True),
            "TransactionMessageAttempts": ("0", True),
            "TransactionMessageRetryInterval": ("0", True),
            "SupportedFeatureProfiles": ("Core,RemoteTrigger,SmartCharging", True),
            "ChargeProfileMaxStackLevel": (str(MAX_STACK_LEVEL), True),
            "ChargingScheduleAllowedChargingRateUnit": ("Current,Power", True),
            "ChargingScheduleMaxPeriods": (str(MAX_PERIODS), True),
            "MaxChargingProfilesInstalled": (str(MAX_PROFILES), True),
            "GetConfigurationMaxKeys": ("50", True),
        }

    async def change(self, key: str, value: str) -> str:
        """ChangeConfiguration: Accepted, Rejected (bad value or read-only) or NotSupported."""
        known = self.values()
        if key not in known:
            return "NotSupported"
        if known[key][1]:
            return "Rejected"
        try:
            self._apply(key, value)
        except ValueError:
            return "Rejected"
        await self._outbox.put_setting(key, value)
        return "Accepted"

    def _apply(self, key: str, value: str) -> None:
        if key == "HeartbeatInterval":
            seconds = int(value)
            if not 1 <= seconds <= 86_400:
                raise ValueError(value)
            self.heartbeat_s = float(seconds)
        elif key == "MeterValueSampleInterval":
            seconds = int(value)
            if not 1 <= seconds <= 86_400:
                raise ValueError(value)
            self.meter_interval_s = float(seconds)
        elif key == "MeterValuesSampledData":
            chosen = tuple(m.strip() for m in value.split(",") if m.strip())
            if not chosen or any(m not in MEASURANDS for m in chosen):
                raise ValueError(value)
            self.measurands = chosen
        elif key in FLAGS:
            if value.lower() not in ("true", "false"):
                raise ValueError(value)
            setattr(self, FLAGS[key], value.lower() == "true")

    def report(self, keys: list[str] | None) -> tuple[list[dict[str, Any]], list[str]]:
        known = self.values()
        wanted = keys or list(known)
        found = [
            {"key": k, "readonly": known[k][1], "value": known[k][0]} for k in wanted if k in known
        ]
        return found, [k for k in wanted if k not in known]
