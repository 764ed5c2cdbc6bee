"""Optional payment before a session's relay closes: price, pre-authorisation, capture, receipt.

A provider is an interface (authorise an amount on a card, capture part of it, release it); the
built-in demo provider approves and declines test card numbers so the whole flow can be shown and
tested without any secret. Amounts are in the configured currency, rounded to cents.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

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


class PaymentProvider(Protocol):
    name: str

    async def authorise(self, card_number: str, amount: float, currency: str) -> Authorisation: ...

    async def capture(self, auth: Authorisation, amount: float) -> None: ...

    async def release(self, auth: Authorisation) -> None: ...


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


DEMO_CARDS = {
    "4242424242424242": None,
    "5555555555554444": None,
    "4000000000000002": "The card was declined by the bank.",
    "4000000000009995": "The card has insufficient funds.",
}
"""Test numbers: the first two approve, the others decline with the reason shown."""


class DemoProvider:
    """Approves and declines the test numbers above; refuses every other number."""

    name = "demo"

    async def authorise(self, card_number: str, amount: float, currency: str) -> Authorisation:
        number = "".join(c for c in card_number if c.isdigit())
        if not 12 <= len(number) <= 19 or not luhn_ok(number):
            raise PaymentDeclined("This is not a valid card number.")
        if number not in DEMO_CARDS:
            raise PaymentDeclined("Demo mode: use a test card, e.g. 4242 4242 4242 4242.")
        reason = DEMO_CARDS[number]
        if reason is not None:
            raise PaymentDeclined(reason)
        return Authorisation(f"demo_{secrets.token_hex(8)}", round(amount, 2), number[-4:])

    async def capture(self, auth: Authorisation, amount: float) -> None:
        if amount > auth.amount + 1e-9:
            raise PaymentDeclined("The amount is above what was authorised.")

    async def release(self, auth: Authorisation) -> None:
        """Nothing is held by the demo; a real provider voids the authorisation here."""


PROVIDERS = {"demo": DemoProvider}


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


class PaymentDesk:
    """Takes a pre-authorisation before a session may draw power and charges the energy after."""

    def __init__(
        self,
        config: PaymentConfig,
        provider: PaymentProvider,
        store: PaymentStore | None,
        wall: Any,
    ) -> None:
        self.config = config
        self.provider = provider
        self.store = store
        self._wall = wall
        self._auth: dict[str, Authorisation] = {}
        self.receipts: dict[str, Receipt] = {}

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

    async def authorise(self, session: LiveSession, card_number: str) -> Receipt:
        auth = await self.provider.authorise(
            card_number, self.config.preauth_amount, self.config.currency
        )
        self._auth[session.public_token] = auth
        receipt = Receipt(
            currency=self.config.currency,
            price_per_kwh=self.config.price_per_kwh,
            session_fee=self.config.session_fee,
            authorised=auth.amount,
            card_last4=auth.card_last4,
            reference=auth.reference,
        )
        self.receipts[session.public_token] = receipt
        await self._record(session, "authorised", auth.amount, 0.0, auth.reference)
        return receipt

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
        receipt = self.receipts.get(session.public_token)
        if auth is None:
            return
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


def make_provider(name: str) -> PaymentProvider:
    try:
        return PROVIDERS[name]()
    except KeyError:
        raise ValueError(f"unknown payment provider {name!r} (known: demo)") from None
