"""The station side's acceptance rules for a handshake (spec §3): one place for every station.

The reference station and the serial console's station role both answer HELLO, BATT and REQ;
these checks decide what they accept, and raise the :class:`ProtocolError` whose NAK says why.
"""

from __future__ import annotations

from firmware.pevlink.errors import ErrorCode, ProtocolError
from firmware.pevlink.messages import Battery, ChargeRequest, Hello
from firmware.pevlink.vocabulary import SUPPORTED_VERSIONS


def common_version(hello: Hello) -> int:
    """The newest protocol version both sides speak."""
    common = sorted(set(hello.versions) & set(SUPPORTED_VERSIONS))
    if not common:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            "no protocol version in common",
            field="ver",
            accept=",".join(str(v) for v in SUPPORTED_VERSIONS),
        )
    return common[-1]


def check_battery(hello: Hello | None, battery: Battery, v_min_v: float, v_max_v: float) -> None:
    """A pack this port can supply and measure, declared after HELLO."""
    if hello is None:
        raise ProtocolError(ErrorCode.WRONG_STATE, "HELLO first")
    if battery.v_max_v > v_max_v:
        raise ProtocolError(
            ErrorCode.NOT_SUPPORTED,
            f"port limit {v_max_v:g} V",
            field="vmax",
            accept=f"{v_max_v:g}",
        )
    if battery.v_min_v < v_min_v:
        raise ProtocolError(
            ErrorCode.NOT_SUPPORTED,
            f"port minimum {v_min_v:g} V",
            field="vmin",
            accept=f"{v_min_v:g}",
        )


def check_request(battery: Battery | None, request: ChargeRequest) -> None:
    """A request consistent with the battery the vehicle declared."""
    if battery is None:
        raise ProtocolError(ErrorCode.WRONG_STATE, "BATT first")
    if request.voltage_v > battery.v_max_v:
        raise ProtocolError(
            ErrorCode.INCONSISTENT,
            "voltage above the declared maximum",
            field="v",
            accept=f"{battery.v_max_v:g}",
        )
