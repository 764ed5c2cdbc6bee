"""The permit a port's state gives the safety core: what may flow on it, and until when."""

from __future__ import annotations

from firmware.station.port import PortController
from firmware.station.safety_core import PERMIT_TTL_S, Permit
from firmware.station.states import LIVE_STATES


def renewed_permit(
    port: PortController, held: Permit | None, now: float, hold_s: float
) -> Permit | None:
    """The permit ``port`` should hold now, or None when ``held`` still says the same.

    An unchanged permit is renewed once half its life has passed, not on every pass: a control
    plane that stops still loses it within its lifetime (sooner, if anything). Its life is a
    second, or five watchdog holds when the board's hold is longer.
    """
    live = port.state in LIVE_STATES and port.session is not None
    limits = port.limits() if live else None
    verified, grant_a, busy = port.verified, port.grant_a, port.busy
    charging = port.vehicle_reports_charging()
    life = max(PERMIT_TTL_S, 5.0 * hold_s)
    if (
        held is not None
        and held.expires_at - now > life / 2
        and held.live == live
        and held.limits is limits
        and held.verified == verified
        and held.grant_a == grant_a
        and held.busy == busy
        and held.vehicle_charging == charging
        and held.guard is port.guard
    ):
        return None
    return Permit(
        live=live,
        limits=limits,
        verified=verified,
        grant_a=grant_a,
        busy=busy,
        vehicle_charging=charging,
        guard=port.guard,
        expires_at=now + life,
    )
