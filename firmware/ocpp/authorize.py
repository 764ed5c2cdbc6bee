"""Authorising a session's idTag before the station closes its switch (OCPP 1.6 §3.5, §4.2).

The station asks :meth:`Authorization.verdict` for every session while its port waits in
AUTHORIZING (``Station.authorizer``). Online, the central system answers Authorize; offline, or
when it does not answer within ``AUTHORIZE_WAIT_S``, the configuration keys decide:
``LocalAuthorizeOffline`` (a tag the authorisation cache holds as Accepted may charge),
``AllowOfflineTxForUnknownId`` (a tag the cache does not know may charge). A tag the cache holds
as Blocked, Invalid or Expired never charges offline. ``LocalPreAuthorize`` lets a cached
Accepted tag start online without waiting for the answer.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import OCPPError
from ocpp.v16 import call

from firmware.ocpp.errors import LinkLost
from firmware.station.sessions import Verdict
from hal.clock import wait_for

if TYPE_CHECKING:
    from firmware.ocpp.uplink import Uplink

log = logging.getLogger(__name__)

AUTHORIZE_WAIT_S = 10.0
"""No answer to Authorize by then: the offline rules decide."""
CACHE_SIZE = 500
"""Tags the cache keeps; the least recently confirmed go first."""

REFUSED_WORDS = {
    "Blocked": "Not authorised: the tag is blocked",
    "Expired": "Not authorised: the tag has expired",
    "Invalid": "Not authorised: the tag is not known to the central system",
    "ConcurrentTx": "Not authorised: the tag is already charging elsewhere",
}
OFFLINE_UNKNOWN = "Not authorised: the central system cannot be reached and the tag is unknown"


@dataclass(frozen=True, slots=True)
class Cached:
    status: str
    expiry: float | None
    """Wall time after which an Accepted entry counts as Expired (idTagInfo.expiryDate)."""

    def status_at(self, now: float) -> str:
        if self.status == "Accepted" and self.expiry is not None and now >= self.expiry:
            return "Expired"
        return self.status


class AuthCache:
    """The authorisation cache (§3.5.1): the last idTagInfo of each tag, kept in the uplink's
    database so it outlives a restart, as the central system expects."""

    def __init__(self, uplink: Uplink) -> None:
        self.up = uplink
        self.entries: dict[str, Cached] = {}

    def load(self, raw: str | None) -> None:
        stored = json.loads(raw or "{}")
        self.entries = {tag: Cached(e["status"], e.get("expiry")) for tag, e in stored.items()}

    def get(self, id_tag: str) -> Cached | None:
        if not self.up.settings.cache_enabled:
            return None
        return self.entries.get(id_tag)

    async def put(self, id_tag: str, info: dict[str, Any]) -> None:
        """Remember an Authorize or StartTransaction answer's idTagInfo."""
        if not self.up.settings.cache_enabled:
            return
        self.entries.pop(id_tag, None)
        self.entries[id_tag] = Cached(str(info.get("status")), _expiry(info.get("expiry_date")))
        while len(self.entries) > CACHE_SIZE:
            del self.entries[next(iter(self.entries))]
        await self._save()

    async def clear(self) -> None:
        self.entries.clear()
        await self._save()

    async def _save(self) -> None:
        data = {t: {"status": c.status, "expiry": c.expiry} for t, c in self.entries.items()}
        await self.up.outbox.put_setting("auth_cache", json.dumps(data))


class Authorization:
    def __init__(self, uplink: Uplink) -> None:
        self.up = uplink
        self.cache = AuthCache(uplink)

    async def verdict(self, connector: int, id_tag: str, remote: bool) -> Verdict:
        up = self.up
        if not (up.settings.available(0) and up.settings.available(connector)):
            return Verdict(False, "Out of service: set unavailable by the central system")
        if remote or not up.config.authorize:
            # A RemoteStartTransaction's tag (AuthorizeRemoteTxRequests is false), or no
            # Authorize at all: the StartTransaction reply decides (StopTransactionOnInvalidId).
            return Verdict(True)
        status = await self.status(id_tag)
        if status == "Accepted":
            return Verdict(True)
        log.warning("ocpp: idTag %s refused: %s", id_tag, status)
        return Verdict(False, REFUSED_WORDS.get(status, OFFLINE_UNKNOWN))

    async def status(self, id_tag: str) -> str:
        """Accepted, a refusal from the central system or the cache, or Unknown (offline, not
        allowed): the authorisation status of ``id_tag`` now."""
        up = self.up
        now = up.clock.wall()
        cached = self.cache.get(id_tag)
        pre = up.settings.local_pre_authorize and up.state == "online"
        if pre and cached is not None and cached.status_at(now) == "Accepted":
            return "Accepted"
        if up.state == "online":
            try:
                result = await wait_for(
                    up.clock, up.call(call.Authorize(id_tag=id_tag)), AUTHORIZE_WAIT_S
                )
            except (LinkLost, OCPPError, TimeoutError) as exc:
                log.warning("ocpp: Authorize unanswered (%s): offline rules", exc or "timeout")
            else:
                info = dict(result.id_tag_info)
                await self.cache.put(id_tag, info)
                return str(info["status"])
        return self.offline(cached, now)

    def offline(self, cached: Cached | None, now: float) -> str:
        settings = self.up.settings
        if cached is not None:
            status = cached.status_at(now)
            if status != "Accepted":
                return status
            if settings.local_authorize_offline:
                return "Accepted"
        if settings.allow_offline_unknown:
            return "Accepted"
        return "Unknown"


def _expiry(text: Any) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
