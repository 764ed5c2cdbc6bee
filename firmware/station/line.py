"""A port's failure boundary: its serial line may fail, and only that port notices.

Loss of the transport (an ``OSError`` from the device: a USB-serial adapter pulled out, ``EIO``
on a hung-up tty, a device that vanished) becomes an event of that port: its switch opens, it
shows a fault with reason ``link``, and the device is reopened with backoff while every other port
goes on charging. When the line is back the station announces itself (BOOT), so whatever is on
the line now starts its handshake again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from firmware.pevlink import Boot
from firmware.pevlink.timers import T_REPLY
from firmware.pevlink.vocabulary import SUPPORTED_VERSIONS
from firmware.station.safety import Trip
from firmware.station.spec import LINK_ERRORS
from firmware.station.states import PortState
from hal.clock import wait_for

if TYPE_CHECKING:
    from firmware.station.port import PortController

log = logging.getLogger(__name__)


def reopen_backoff(failures: int) -> float:
    """Seconds before the next attempt to reopen a lost serial line: 0.5, 1, 2, 4, then 5."""
    return float(min(5.0, 0.5 * 2 ** max(0, failures - 1)))


async def run_line(port: PortController, backoff: Callable[[int], float] = reopen_backoff) -> None:
    """Run the port's PEV Link conversation for ever, across losses of its serial line."""
    failures = 0
    while True:
        try:
            await port.link.run()
        except* OSError as group:
            line_lost(port, group.exceptions[0])
        failures += 1
        while True:
            await port.clock.sleep(backoff(failures))
            try:
                await port.io.link.reopen()  # type: ignore[attr-defined]
            except (OSError, AttributeError) as exc:
                log.debug("port %d: line still absent: %s", port.port_id, exc)
                failures += 1
                continue
            break
        failures = 0
        line_back(port)
        with contextlib.suppress(*LINK_ERRORS):
            boot = Boot("station", SUPPORTED_VERSIONS)
            await wait_for(port.clock, port.link.notify(boot), T_REPLY)


def line_lost(port: PortController, exc: BaseException) -> None:
    text = f"The port's serial line failed: {exc}"
    log.error("port %d: %s", port.port_id, text)
    port.link_down = str(exc)
    port.trip(Trip("link", text[:200]))
    if port.state == PortState.FAULT:
        port.set_words(f"{text[:120]} (reconnecting)")


def line_back(port: PortController) -> None:
    log.warning("port %d: serial line back", port.port_id)
    port.link_down = None
    port.link.last_rx = None
    if port.state == PortState.FAULT and port.fault is not None:
        port.vehicle_gone = True  # the next vehicle to identify clears the fault
    port.changed()
