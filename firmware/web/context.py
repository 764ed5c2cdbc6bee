"""What the web application holds: its settings, the station, the records, and their keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from firmware.budget.manager import BudgetManager
from firmware.payment import PaymentDesk
from firmware.station.station import Station


@dataclass(frozen=True, slots=True)
class ApiSettings:
    operator_token: str | None
    touchscreen_hosts: tuple[str, ...]
    public_url: str
    max_requests: int = 1200
    """Requests in progress at once (each open event stream is one); more get 503."""


class History(Protocol):
    """Finished sessions from the records (firmware.store through an adapter)."""

    async def session(self, public_token: str) -> dict[str, Any] | None: ...

    async def sessions(self, limit: int, offset: int) -> list[dict[str, Any]]: ...


STATION_KEY = web.AppKey("station", Station)
BOOT_KEY = web.AppKey("boot", str)
"""Changes with every start of the daemon: a page that sees another one knows it restarted."""
IN_FLIGHT_KEY = web.AppKey("in_flight", list)
SETTINGS_KEY = web.AppKey("api_settings", ApiSettings)
HISTORY_KEY = web.AppKey("history", History)
LinkView = Callable[[], dict[str, Any]]
LINK_KEY: web.AppKey[LinkView] = web.AppKey("link")
"""The central system link's state (OCPP), when the station has one."""
BUDGET_KEY = web.AppKey("budget", BudgetManager)
PAYMENT_KEY = web.AppKey("payment", PaymentDesk)


def station_snapshot(app: web.Application) -> dict[str, Any]:
    """The station's snapshot, with what sets its budget now when a budget manager runs."""
    snapshot = app[STATION_KEY].snapshot()
    manager = app.get(BUDGET_KEY)
    if manager is not None:
        snapshot["budget"] = manager.view()
    return snapshot
