"""Smart charging (OCPP 1.6 §3.13): profiles from the central system turned into limits in W.

A ChargePointMaxProfile (connector 0) limits the whole station: it lowers the station's budget.
A TxProfile (one live transaction) or else a TxDefaultProfile (one connector, or 0 for all) caps
one connector: the cap goes to :class:`CappedPolicy`, which narrows what the allocator may grant
that port. At each level the profile with the highest stackLevel in force wins; limits only ever
lower what the station's own rules allow. Limits in A are converted at the measured voltage.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from firmware.station.allocator import Demand, Grant, Policy

MAX_PROFILE = "ChargePointMaxProfile"
TX_DEFAULT = "TxDefaultProfile"
TX = "TxProfile"
RECUR_S = {"Daily": 86_400.0, "Weekly": 604_800.0}
MAX_STACK_LEVEL = 8
MAX_PERIODS = 24
MAX_PROFILES = 16


def plain(value: Any) -> Any:
    """The ocpp package parses numbers as Decimal; profiles are kept (and stored) as floats."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def iso(t: float) -> str:
    """UTC with an explicit zone: a time without one breaks central systems."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Installed:
    connector: int
    profile: dict[str, Any]
    """As received, snake_case (the ocpp package's camel_to_snake_case)."""
    installed_at: float

    @property
    def purpose(self) -> str:
        return str(self.profile["charging_profile_purpose"])

    @property
    def stack_level(self) -> int:
        return int(self.profile["stack_level"])

    @property
    def profile_id(self) -> int:
        return int(self.profile["charging_profile_id"])

    @property
    def unit(self) -> str:
        return str(self.profile["charging_schedule"]["charging_rate_unit"])

    def start(self, t: float, tx_start: float | None) -> float | None:
        """When the schedule in force at ``t`` began, or None when none is."""
        p = self.profile
        schedule = p["charging_schedule"]
        kind = p["charging_profile_kind"]
        if kind == "Relative":
            return tx_start if tx_start is not None else self.installed_at
        start = parse_time(schedule.get("start_schedule")) or parse_time(p.get("valid_from"))
        start = self.installed_at if start is None else start
        if kind == "Recurring":
            period = RECUR_S.get(str(p.get("recurrency_kind")), 86_400.0)
            if t >= start:
                start += math.floor((t - start) / period) * period
        return start

    def limit_at(self, t: float, tx_start: float | None) -> float | None:
        """The limit in force at wall time ``t`` (in this profile's unit), or None."""
        valid_from = parse_time(self.profile.get("valid_from"))
        valid_to = parse_time(self.profile.get("valid_to"))
        if (valid_from is not None and t < valid_from) or (valid_to is not None and t >= valid_to):
            return None
        start = self.start(t, tx_start)
        if start is None or t < start:
            return None
        schedule = self.profile["charging_schedule"]
        duration = schedule.get("duration")
        if duration is not None and t >= start + float(duration):
            return None
        limit = None
        for period in sorted(schedule["charging_schedule_period"], key=lambda x: x["start_period"]):
            if start + float(period["start_period"]) <= t:
                limit = float(period["limit"])
        return limit

    def boundaries(self, t0: float, t1: float, tx_start: float | None) -> list[float]:
        """Times in [t0, t1) where this profile's limit may change."""
        out: list[float] = []
        schedule = self.profile["charging_schedule"]
        for t in (
            parse_time(self.profile.get("valid_from")),
            parse_time(self.profile.get("valid_to")),
        ):
            if t is not None:
                out.append(t)
        probe = t0
        while probe < t1:
            start = self.start(probe, tx_start)
            if start is None:
                break
            out.extend(
                start + float(p["start_period"]) for p in schedule["charging_schedule_period"]
            )
            if schedule.get("duration") is not None:
                out.append(start + float(schedule["duration"]))
            if self.profile["charging_profile_kind"] != "Recurring":
                break
            probe = start + RECUR_S.get(str(self.profile.get("recurrency_kind")), 86_400.0)
            out.append(probe)
        return [t for t in out if t0 <= t < t1]


def check_profile(
    connector: int, profile: dict[str, Any], has_tx: Callable[[int, int | None], bool]
) -> str | None:
    """Why the station refuses this profile, or None when it accepts it."""
    purpose = profile.get("charging_profile_purpose")
    schedule = profile.get("charging_schedule") or {}
    if purpose == MAX_PROFILE and connector != 0:
        return "ChargePointMaxProfile applies to connector 0 only"
    if purpose == TX and (connector == 0 or not has_tx(connector, profile.get("transaction_id"))):
        return "TxProfile needs a live transaction on that connector"
    if not 0 <= int(profile.get("stack_level", -1)) <= MAX_STACK_LEVEL:
        return f"stackLevel must be 0..{MAX_STACK_LEVEL}"
    if len(schedule.get("charging_schedule_period", [])) > MAX_PERIODS:
        return f"at most {MAX_PERIODS} periods"
    if profile.get("charging_profile_kind") == "Recurring" and not (
        schedule.get("start_schedule") or profile.get("valid_from")
    ):
        return "a recurring profile needs a startSchedule"
    return None


class ProfileBook:
    """The installed profiles and the limits they give."""

    def __init__(self) -> None:
        self.profiles: list[Installed] = []

    def install(self, connector: int, profile: dict[str, Any], now: float) -> None:
        new = Installed(connector, plain(profile), now)
        self.profiles = [
            p
            for p in self.profiles
            if p.profile_id != new.profile_id
            and not (
                p.connector == connector
                and p.purpose == new.purpose
                and p.stack_level == new.stack_level
            )
        ]
        self.profiles.append(new)
        del self.profiles[:-MAX_PROFILES]

    def clear(
        self,
        profile_id: int | None = None,
        connector: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> int:
        def matches(p: Installed) -> bool:
            if profile_id is not None:
                return p.profile_id == profile_id
            return (
                (connector is None or p.connector == connector)
                and (purpose is None or p.purpose == purpose)
                and (stack_level is None or p.stack_level == stack_level)
            )

        before = len(self.profiles)
        self.profiles = [p for p in self.profiles if not matches(p)]
        return before - len(self.profiles)

    def drop_tx(self, connector: int) -> None:
        """A TxProfile ends with its transaction."""
        self.profiles = [
            p for p in self.profiles if not (p.purpose == TX and p.connector == connector)
        ]

    def _winner(
        self, candidates: Iterable[Installed], t: float, tx_start: float | None, volts: float
    ) -> float | None:
        best: tuple[int, float] | None = None
        for p in candidates:
            limit = p.limit_at(t, tx_start)
            if limit is None:
                continue
            watts = limit * volts if p.unit == "A" else limit
            if best is None or p.stack_level > best[0]:
                best = (p.stack_level, watts)
        return None if best is None else best[1]

    def station_limit_w(self, t: float, volts: float) -> float | None:
        return self._winner((p for p in self.profiles if p.purpose == MAX_PROFILE), t, None, volts)

    def budget_limit_w(self, t: float, volts: float) -> tuple[float | None, str]:
        """The station limit for the ``ocpp`` budget source: a ChargePointMaxProfile, else a
        TxDefaultProfile on connector 0; and which one it is."""
        limit = self.station_limit_w(t, volts)
        if limit is not None:
            return limit, MAX_PROFILE
        defaults = (p for p in self.profiles if p.purpose == TX_DEFAULT and p.connector == 0)
        limit = self._winner(defaults, t, None, volts)
        return (limit, TX_DEFAULT) if limit is not None else (None, "")

    def connector_limit_w(
        self, connector: int, t: float, tx_start: float | None, volts: float
    ) -> float | None:
        """TxProfile if one is in force, else TxDefaultProfile (its own connector before 0)."""
        if tx_start is not None:
            tx = [p for p in self.profiles if p.purpose == TX and p.connector == connector]
            limit = self._winner(tx, t, tx_start, volts)
            if limit is not None:
                return limit
        for scope in (connector, 0):
            defaults = [
                p for p in self.profiles if p.purpose == TX_DEFAULT and p.connector == scope
            ]
            limit = self._winner(defaults, t, tx_start, volts)
            if limit is not None:
                return limit
        return None

    def composite(
        self,
        connector: int,
        t0: float,
        duration_s: float,
        tx_start: float | None,
        volts: float,
        unit: str,
    ) -> list[tuple[float, float]]:
        """[(seconds from t0, limit in ``unit``)]: the combined limit over the window."""
        t1 = t0 + duration_s
        points = {t0}
        for p in self.profiles:
            points.update(p.boundaries(t0, t1, tx_start))
        out: list[tuple[float, float]] = []
        for t in sorted(points):
            limits = [self.station_limit_w(t, volts)]
            if connector > 0:
                limits.append(self.connector_limit_w(connector, t, tx_start, volts))
            known = [x for x in limits if x is not None]
            if not known:
                continue
            watts = min(known)
            value = watts / volts if unit == "A" and volts > 0 else watts
            value = round(value, 1)
            if not out or out[-1][1] != value:
                out.append((round(t - t0), value))
        return out


class CappedPolicy:
    """Wraps the station's sharing policy: a connector's cap narrows what it may be granted.

    The allocator already keeps every rule of its own (budget, vehicle limits, temperature); the cap
    is one more upper bound. A cap below the vehicle's minimum current means no grant at all.
    """

    def __init__(self, inner: Policy) -> None:
        self.inner = inner
        self.caps_a: dict[int, float] = {}

    def allocate(self, budget_w: float, demands: Sequence[Demand], now: float) -> dict[int, Grant]:
        narrowed: list[Demand] = []
        held: list[int] = []
        for d in demands:
            cap = self.caps_a.get(d.port_id)
            if cap is None or cap >= d.i_max_a:
                narrowed.append(d)
            elif cap + 1e-9 < d.i_min_a:
                held.append(d.port_id)
            else:
                narrowed.append(replace(d, i_max_a=cap))
        grants = self.inner.allocate(budget_w, narrowed, now)
        for port_id in held:
            grants[port_id] = Grant(
                port_id, 0.0, "central_system", "Paused by the operator's limit"
            )
        return grants
