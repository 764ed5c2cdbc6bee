"""Optional payment before a session's relay closes: price, hosted checkout, capture, receipt.

The station never sees a card number. The rider's phone goes to the provider's own checkout page;
the provider calls the station back with a signed result (:mod:`firmware.checkout`), and only an
authorisation that is signed, recent and new lets the session draw power. A result that comes
after the session's payment window closed is recorded and its hold released at once: nothing is
lost and no session runs unpaid. Amounts are in the configured currency, rounded to cents.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from firmware.checkout import CALLBACK, TOLERANCE_S, CallbackVerifier, Purpose, parse_result
from firmware.config import PaymentConfig
from firmware.station.port import LiveSession, PortController

log = logging.getLogger(__name__)


class PaymentDeclined(Exception):
    """The provider refused; the message is safe to show to the rider."""


@dataclass(frozen=True, slots=True)
class Authorisation:
    reference: str
    amount: float
    card_last4: str


class ProviderUnavailable(Exception):
    """The provider could not be reached or gave an answer the station cannot use."""


class PaymentProvider(Protocol):
    """A hosted checkout: the rider types the card on the provider's page, never the station's.

    ``create_checkout`` opens one and returns the address of the provider's page; the provider
    then calls ``callback_url`` with a signed result (:mod:`firmware.checkout`) and sends the
    rider back to ``return_url``. Capture and release act on the authorisation the result named.
    """

    name: str

    async def create_checkout(
        self, checkout_id: str, amount: float, currency: str, callback_url: str, return_url: str
    ) -> str: ...

    async def capture(self, auth: Authorisation, amount: float) -> None: ...

    async def release(self, auth: Authorisation) -> None: ...


class PaymentStore(Protocol):
    async def record_payment(
        self,
        *,
        session_id: int,
        provider: str,
        status: str,
        authorised: float,
        captured: float,
        currency: str,
        reference: str,
        t: float,
    ) -> None: ...


@dataclass
class Receipt:
    currency: str
    price_per_kwh: float
    session_fee: float
    authorised: float
    energy_kwh: float = 0.0
    energy_cost: float = 0.0
    total: float = 0.0
    card_last4: str = ""
    reference: str = ""
    status: str = "authorised"
    """authorised, captured, failed"""

    def view(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "price_per_kwh": self.price_per_kwh,
            "session_fee": self.session_fee,
            "authorised": self.authorised,
            "energy_kwh": round(self.energy_kwh, 3),
            "energy_cost": self.energy_cost,
            "total": self.total,
            "card_last4": self.card_last4,
            "reference": self.reference,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class Pending:
    """A checkout opened for a session and not yet answered by the provider."""

    port_id: int
    session: LiveSession
    opened: float


MAX_PENDING = 1000
"""Open checkouts station-wide; each session has one at most, so only many sessions fill it."""

RECEIPTS_KEPT_S = 7 * 24 * 3600.0
"""A receipt is shown on its session's page this long after it was made (the store keeps it)."""
MAX_RECEIPTS = 1000
DECLINES_KEPT_S = 3600.0
"""The words of a refusal matter while the rider is paying; an hour is plenty."""
MAX_DECLINES = 1000

Approve = Callable[[int, LiveSession], Awaitable[bool]]


class Aged:
    """When each entry of a dict keyed by session was made, to drop the old and the many."""

    def __init__(self, kept_s: float, most: int) -> None:
        self.kept_s = kept_s
        self.most = most
        self._made: dict[str, float] = {}

    def put(self, entries: dict[str, Any], key: str, value: Any, now: float) -> None:
        """Store ``value`` as the newest entry."""
        entries.pop(key, None)
        self._made.pop(key, None)
        entries[key] = value
        self._made[key] = now

    def prune(self, entries: dict[str, Any], now: float, keep: Collection[str] = ()) -> None:
        """Drop entries past their age and, oldest first, past the count (never one in keep)."""
        for key in list(self._made):
            if key not in entries:
                del self._made[key]
        old = [k for k, t in self._made.items() if now - t > self.kept_s and k not in keep]
        spare = [k for k in self._made if k not in keep]
        excess = max(0, len(self._made) - self.most)
        for key in dict.fromkeys(old + spare[:excess]):
            entries.pop(key, None)
            del self._made[key]


class PaymentDesk:
    """Opens hosted checkouts, takes the provider's signed results, and charges the energy after."""

    def __init__(
        self,
        config: PaymentConfig,
        provider: PaymentProvider,
        store: PaymentStore | None,
        wall: Any,
        *,
        secret: str = "",
        callback_url: str = "",
        payment_window_s: float = 300.0,
    ) -> None:
        self.config = config
        self.pending_ttl_s = payment_window_s + TOLERANCE_S
        """A checkout outlives its session's payment window by the callback's tolerance only, so
        that a late result is still recognised (and its hold released), and no longer."""
        self.provider = provider
        self.store = store
        self._wall = wall
        self.verifier = CallbackVerifier(secret, wall)
        self.callback_url = callback_url
        self._pending: dict[str, Pending] = {}
        self._auth: dict[str, Authorisation] = {}
        self.receipts: dict[str, Receipt] = {}
        self.declines: dict[str, str] = {}
        """The last refusal's words per session (public token), for its owner's page."""
        self._receipts_made = Aged(RECEIPTS_KEPT_S, MAX_RECEIPTS)
        self._declines_made = Aged(DECLINES_KEPT_S, MAX_DECLINES)

    def connect(self, provider: PaymentProvider, secret: str, callback_url: str) -> None:
        """Another provider, its shared secret and the callback address (the bench's demo)."""
        self.provider = provider
        self.verifier = CallbackVerifier(secret, self._wall)
        self.callback_url = callback_url

    def terms(self) -> dict[str, Any]:
        c = self.config
        return {
            "currency": c.currency,
            "price_per_kwh": c.price_per_kwh,
            "session_fee": c.session_fee,
            "preauth_amount": c.preauth_amount,
            "provider": self.provider.name,
        }

    def price(self, energy_wh: float) -> tuple[float, float]:
        """(energy cost, total) for the energy delivered; the total never exceeds the hold."""
        energy_cost = round(energy_wh / 1000.0 * self.config.price_per_kwh, 2)
        total = round(min(self.config.preauth_amount, energy_cost + self.config.session_fee), 2)
        return energy_cost, total

    async def open_checkout(self, port_id: int, session: LiveSession, return_url: str) -> str:
        """The address of the provider's page where this session's owner pays."""
        now = float(self._wall())
        token = session.public_token
        for key in [k for k, p in self._pending.items() if self._done_with(p, token, now)]:
            del self._pending[key]  # one open checkout per session: a new one replaces the old
        if len(self._pending) >= MAX_PENDING:
            raise ProviderUnavailable("too many checkouts are open; try again shortly")
        checkout_id = "co_" + secrets.token_urlsafe(18)
        url = await self.provider.create_checkout(
            checkout_id,
            self.config.preauth_amount,
            self.config.currency,
            self.callback_url,
            return_url,
        )
        for key in [k for k, p in self._pending.items() if p.session.public_token == token]:
            del self._pending[key]  # another request for this session opened one meanwhile
        self._pending[checkout_id] = Pending(port_id, session, now)
        self.declines.pop(token, None)
        return url

    def _done_with(self, pending: Pending, token: str, now: float) -> bool:
        """Forgotten: replaced by a new checkout of its session, paid, or past its window."""
        return (
            pending.session.public_token == token
            or pending.session.paid
            or now - pending.opened > self.pending_ttl_s
        )

    async def take_callback(
        self, headers: Mapping[str, str], body: bytes, approve: Approve
    ) -> dict[str, Any]:
        """The provider's signed result. Raises CallbackRefused for a forged, stale or replayed
        one, KeyError for a checkout this station did not open (or already closed)."""
        # Signed for the address this station gave the provider (a proxy in front may rewrite it).
        purpose = Purpose.of(CALLBACK, "POST", self.callback_url)
        result = parse_result(self.verifier.verify(headers, body, purpose))
        pending = self._pending.pop(result.checkout_id, None)
        if pending is None:
            raise KeyError(result.checkout_id)
        session = pending.session
        token = session.public_token
        if result.status == "declined":
            self._decline(token, result.message or "The payment was declined.")
            log.info("payment declined on port %d: %s", pending.port_id, result.message)
            return {"result": "declined"}
        auth = Authorisation(result.reference, result.amount, result.card_last4)
        short = self._short_of_hold(result.amount, result.currency)
        if short:
            # The end capture may take up to the hold: less (a partial authorisation on a prepaid
            # card) or another currency would leave the energy unpaid.
            await self._release_auth(session, auth, None)
            self._decline(token, short)
            log.warning("payment refused on port %d: %s", pending.port_id, short)
            return {"result": "released", "reason": short}
        if token in self._auth:  # a second checkout paid for a session already paid
            await self._release_auth(session, auth, None)
            return {"result": "released", "reason": "the session was already paid"}
        receipt = Receipt(
            currency=self.config.currency,
            price_per_kwh=self.config.price_per_kwh,
            session_fee=self.config.session_fee,
            authorised=auth.amount,
            card_last4=auth.card_last4,
            reference=auth.reference,
        )
        # Approved before anything is awaited: were the store awaited first, the window could
        # close meanwhile and the end of a session that never ran would capture its fee.
        if not await approve(pending.port_id, session):
            # The session ended while the rider was paying (its window closed): the hold must
            # not outlive it.
            if token not in self._auth:  # not another checkout's receipt, paid meanwhile
                self._keep_receipt(token, receipt)
            await self._release_auth(session, auth, receipt)
            return {"result": "released", "reason": "the session is not waiting for payment"}
        self._auth[token] = auth
        self._keep_receipt(token, receipt)
        self.declines.pop(token, None)
        await self._record(session, "authorised", auth.amount, 0.0, auth.reference)
        return {"result": "started"}

    def _decline(self, token: str, words: str) -> None:
        now = float(self._wall())
        self._declines_made.put(self.declines, token, words, now)
        self._declines_made.prune(self.declines, now)

    def _keep_receipt(self, token: str, receipt: Receipt) -> None:
        """A paid session's receipt stays until its end is captured, however old or many."""
        now = float(self._wall())
        self._receipts_made.put(self.receipts, token, receipt, now)
        self._receipts_made.prune(self.receipts, now, keep=self._auth)

    def _short_of_hold(self, amount: float, currency: str) -> str:
        """Why an authorisation cannot pay for a session ("" when it can)."""
        c = self.config
        if currency.upper() != c.currency.upper():
            return f"The payment was authorised in {currency or 'no currency'}, not {c.currency}."
        if amount + 0.005 < c.preauth_amount:
            return (
                f"Only {amount:.2f} {c.currency} of the {c.preauth_amount:.2f} {c.currency} "
                "hold was authorised; it was released and nothing was charged."
            )
        return ""

    async def settle(self, port: PortController, session: LiveSession) -> None:
        """At the end of a paid session: capture the energy delivered plus the fee."""
        auth = self._auth.pop(session.public_token, None)
        receipt = self.receipts.get(session.public_token)
        if auth is None or receipt is None:
            return
        energy_cost, total = self.price(session.energy_wh)
        receipt.energy_kwh = session.energy_wh / 1000.0
        receipt.energy_cost = energy_cost
        receipt.total = total
        try:
            await self.provider.capture(auth, total)
            receipt.status = "captured"
        except Exception as exc:
            receipt.status = "failed"
            log.error("payment capture failed for session on port %d: %s", port.port_id, exc)
        await self._record(session, receipt.status, auth.amount, total, auth.reference)

    async def release(self, session: LiveSession) -> None:
        """Void a hold whose session ended without power (it outlived its payment window)."""
        auth = self._auth.pop(session.public_token, None)
        if auth is not None:
            await self._release_auth(session, auth, self.receipts.get(session.public_token))

    async def _release_auth(
        self, session: LiveSession, auth: Authorisation, receipt: Receipt | None
    ) -> None:
        try:
            await self.provider.release(auth)
            status = "released"
        except Exception as exc:
            status = "release_failed"
            log.error("payment release failed: %s", exc)
        if receipt is not None:
            receipt.status = status
            receipt.total = 0.0
        await self._record(session, status, auth.amount, 0.0, auth.reference)

    async def _record(
        self, session: LiveSession, status: str, authorised: float, captured: float, ref: str
    ) -> None:
        if self.store is None or session.session_id is None:
            return
        try:
            await self.store.record_payment(
                session_id=session.session_id,
                provider=self.provider.name,
                status=status,
                authorised=authorised,
                captured=captured,
                currency=self.config.currency,
                reference=ref,
                t=float(self._wall()),
            )
        except Exception as exc:
            log.error("payment not recorded: %s", exc)


def make_provider(config: PaymentConfig, wall: Callable[[], float]) -> PaymentProvider:
    """The configured provider's client (the demo speaks the same HTTP API as any other)."""
    from firmware.payment_http import HttpProvider

    if config.provider not in ("demo",):
        raise ValueError(f"unknown payment provider {config.provider!r} (known: demo)")
    return HttpProvider(config.provider, config.provider_url, config.callback_secret, wall)
