"""Relays open on every way out of the process: normal exit, SIGTERM/SIGINT, an escaping exception.

The daemon opens every relay in its own ``finally`` too; this is the belt to that pair of braces,
for paths the event loop never sees (an exception during start-up, a signal before the loop runs).
A hung or killed process is covered by the board's hardware watchdog, not by software.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import sys
from collections.abc import Iterable
from types import FrameType, TracebackType

from hal.interfaces import Relay

_relays: list[Relay] = []
_installed = False


def open_all() -> None:
    """Every switch, each on its own: one that cannot be driven does not keep the others closed."""
    for relay in list(_relays):
        try:
            relay.open_now()
        except Exception as exc:  # the watchdog's hold drops it when the kicks stop
            sys.stderr.write(f"failsafe: a switch did not open: {exc}\n")


def _on_signal(signum: int, frame: FrameType | None) -> None:
    open_all()
    signal.signal(signum, signal.SIG_DFL)
    raise SystemExit(128 + signum)


def _on_exception(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    open_all()
    sys.__excepthook__(kind, value, tb)


def install_failsafe(relays: Iterable[Relay]) -> None:
    """Register relays to open at exit, on SIGTERM/SIGINT and on an uncaught exception."""
    global _installed
    _relays.extend(relays)
    open_all()
    if _installed:
        return
    _installed = True
    atexit.register(open_all)
    sys.excepthook = _on_exception
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Outside the main thread signal handlers cannot be set: atexit and the loop remain.
        with contextlib.suppress(ValueError):
            signal.signal(sig, _on_signal)
