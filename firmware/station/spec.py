"""What a port is made of, and the words it uses: its hardware, its limits, its states in words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from firmware.pevlink.errors import PevLinkError
from firmware.pevlink.link import ByteTransport
from firmware.station.states import PortState
from hal.interfaces import PlugDetect, PowerMonitor, PowerStage, Relay

LINK_ERRORS = (PevLinkError, OSError)
"""What a conversation with a vehicle can fail with: the protocol, or the serial line itself."""

STATE_WORDS: dict[PortState, str] = {
    PortState.EMPTY: "Free",
    PortState.CONNECTED: "Vehicle connected, identifying",
    PortState.UNSUPPORTED: "This vehicle cannot charge on this port",
    PortState.READY: "Ready: press start",
    PortState.AUTHORIZING: "Waiting for the central system to authorise",
    PortState.PAYMENT: "Waiting for payment",
    PortState.WAITING: "Waiting for power",
    PortState.STARTING: "Starting",
    PortState.CHARGING: "Charging",
    PortState.STOPPING: "Stopping",
    PortState.DONE: "Finished",
    PortState.FAULT: "Stopped by a fault",
}

STATE_NOTICE: dict[PortState, str] = {
    PortState.READY: "ready",
    PortState.AUTHORIZING: "waiting",
    PortState.PAYMENT: "payment",
    PortState.WAITING: "waiting",
    PortState.STARTING: "granted",
    PortState.CHARGING: "charging",
    PortState.STOPPING: "stopping",
    PortState.DONE: "done",
    PortState.FAULT: "fault",
}
"""The STATE notice's word for each state the vehicle is told about."""

SETTLE_GRACE_S = 3.0
"""After power-on or a raised grant, how long a vehicle may take to reach it before its measured
current is read as spare headroom."""


@dataclass(frozen=True, slots=True)
class PortSpec:
    """What the port's hardware can do (from the hardware configuration)."""

    port_id: int
    max_current_a: float
    v_min_v: float
    v_max_v: float
    max_power_w: float


class PortIO(Protocol):
    """The hardware a port uses; the station never knows which backend provides it."""

    @property
    def monitor(self) -> PowerMonitor: ...

    @property
    def relay(self) -> Relay: ...

    @property
    def link(self) -> ByteTransport: ...

    @property
    def detect(self) -> PlugDetect | None: ...

    @property
    def stage(self) -> PowerStage | None:
        """The port's CC/CV stage; None where the vehicle regulates its own current."""
        ...
