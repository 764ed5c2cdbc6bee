"""One charging session: its tokens, its energy, its curve, and how it ended.

Durations are measured on the monotonic clock; wall time is kept only for what people read and
for the records (a Pi without a real-time clock jumps when NTP syncs, and an elapsed time computed
from wall time would jump with it). A curve point's time is the start's wall time plus the
monotonic seconds since, so the curve stays in order whatever the wall clock does.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from firmware.pevlink import Summary

STOP_WORDS: dict[str, str] = {
    "user": "Stopped by the rider",
    "full": "Complete: the battery is full",
    "target": "Complete: the target charge was reached",
    "vehicle": "Stopped by the vehicle",
    "bms": "Stopped by the vehicle's battery system",
    "fault": "Stopped by a fault",
    "operator": "Stopped by the operator",
    "payment": "Stopped: payment limit reached",
    "shutdown": "Stopped: the station shut down",
}

CURVE_POINTS = 720
"""An hour of curve at one point every five seconds; older points are dropped."""


@dataclass(slots=True)
class Session:
    port_id: int
    public_token: str
    owner_token: str
    started_at: float
    """Wall time of the start, for people and the records."""
    started_mono: float
    """Monotonic time of the start: every duration counts from here."""
    requested_at: float
    """Monotonic time since when the vehicle has been waiting for power."""
    soc_start: float | None
    session_id: int | None = None
    energy_wh: float = 0.0
    peak_w: float = 0.0
    power_on_at: float | None = None
    power_seconds: float = 0.0
    end_reason: str | None = None
    end_text: str | None = None
    ended_at: float | None = None
    ended_mono: float | None = None
    paid: bool = False
    id_tag: str | None = None
    """Who started it, when a tag (RFID) or the central system named them; None for the QR."""
    samples: list[tuple[float, float, float]] = field(default_factory=list)
    """(time, power W, SoC % or -1) every sample period: the phone page's charge curve."""

    @classmethod
    def open(cls, port_id: int, now_wall: float, now: float, soc: float | None) -> Session:
        return cls(
            port_id=port_id,
            public_token=secrets.token_urlsafe(16),
            owner_token=secrets.token_urlsafe(16),
            started_at=now_wall,
            started_mono=now,
            requested_at=now,
            soc_start=soc,
        )

    @property
    def ended(self) -> bool:
        return self.end_reason is not None

    def elapsed_s(self, now: float) -> float:
        """Seconds since the start on the monotonic clock (frozen once the session ended)."""
        end = self.ended_mono if self.ended_mono is not None else now
        return max(0.0, end - self.started_mono)

    def wall_at(self, now: float) -> float:
        """The wall time a monotonic instant corresponds to, anchored at the start."""
        return self.started_at + (now - self.started_mono)

    def power_on(self, now: float) -> None:
        if self.power_on_at is None:
            self.power_on_at = now

    def power_off(self, now: float) -> None:
        if self.power_on_at is not None:
            self.power_seconds += max(0.0, now - self.power_on_at)
            self.power_on_at = None

    def meter(self, power_w: float, dt: float) -> None:
        self.energy_wh += max(0.0, power_w) * dt / 3600.0
        self.peak_w = max(self.peak_w, power_w)

    def add_point(self, now: float, power_w: float, soc: float | None) -> None:
        self.samples.append((self.wall_at(now), power_w, soc if soc is not None else -1.0))
        del self.samples[:-CURVE_POINTS]

    def end(self, reason: str, text: str | None, now: float) -> bool:
        """Close the session once; False if it had already ended (a late, stale caller)."""
        if self.ended:
            return False
        self.power_off(now)
        self.end_reason = reason
        self.end_text = text or STOP_WORDS.get(reason, reason)
        self.ended_mono = now
        self.ended_at = self.wall_at(now)
        return True

    def summary(self, reason: str) -> Summary:
        """The SUM notice that tells the vehicle how its session ended."""
        return Summary(
            round(self.energy_wh, 3), int(self.power_seconds), reason, round(self.peak_w, 1)
        )


LiveSession = Session
"""The name the rest of the tree knew it by."""
