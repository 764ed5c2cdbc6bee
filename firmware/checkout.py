"""Signed messages between the station and its payment provider: HMAC-SHA256 over the
direction, the method, the path, a timestamp and the exact body, a tolerance on the timestamp, and
each message accepted once.

The provider's callback says how a hosted checkout ended (authorised or declined); nothing in it is
believed unless it is signed with the shared secret, recent, and new. The station signs its own
requests to the provider the same way, so that the provider knows who asks. Both ways share one
secret, so the direction, method and path are signed too: the bytes of a callback (seen by anyone
on its way) never pass as a request to the provider's API, nor one API call as another.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from firmware.cardnumbers import carries_card_number

TIMESTAMP_HEADER = "X-Pev-Timestamp"
SIGNATURE_HEADER = "X-Pev-Signature"
CALLBACK = "callback"
"""The provider to the station: a checkout's result."""
API = "api"
"""The station to the provider: open a checkout, capture, release."""
TOLERANCE_S = 300.0
"""How far a message's timestamp may be from the receiver's clock (both ways)."""


class CallbackRefused(Exception):
    """A message that is not signed, too old or from the future, or seen before."""


@dataclass(frozen=True, slots=True)
class Purpose:
    """What a signature is good for: one direction, one method, one path."""

    direction: str
    """:data:`CALLBACK` or :data:`API`"""
    method: str
    path: str
    """The address's path as the sender wrote it, without the query."""

    @classmethod
    def of(cls, direction: str, method: str, url: str) -> Purpose:
        return cls(direction, method.upper(), urlsplit(url).path or "/")


def sign(secret: str, purpose: Purpose, timestamp: str, body: bytes) -> str:
    head = f"{purpose.direction}\n{purpose.method}\n{purpose.path}\n{timestamp}\n"
    mac = hmac.new(secret.encode(), head.encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(secret: str, purpose: Purpose, wall: float, body: bytes) -> dict[str, str]:
    timestamp = str(int(wall))
    return {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, purpose, timestamp, body),
        "Content-Type": "application/json",
    }


REFERENCE_CHARS = frozenset(string.ascii_letters + string.digits + "_-")
"""An authorisation's reference goes into the provider's API paths: nothing else may be in it."""


def reference_ok(reference: str) -> bool:
    return 1 <= len(reference) <= 200 and set(reference) <= REFERENCE_CHARS


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    """How a hosted checkout ended, as the provider's signed callback says."""

    event_id: str
    checkout_id: str
    status: str
    """``authorised`` or ``declined``"""
    reference: str = ""
    amount: float = 0.0
    currency: str = ""
    """The currency of ``amount``, as the provider echoes it."""
    card_last4: str = ""
    message: str = ""


class CallbackVerifier:
    """Checks a message's signature and age, and remembers the ids it accepted while they could
    still pass the age check, so that a replayed message is refused."""

    def __init__(
        self, secret: str, wall: Callable[[], float], tolerance_s: float = TOLERANCE_S
    ) -> None:
        self.secret = secret
        self._wall = wall
        self.tolerance_s = tolerance_s
        self._seen: dict[str, float] = {}

    def verify(self, headers: Mapping[str, str], body: bytes, purpose: Purpose) -> dict[str, Any]:
        """The message's JSON object when it is signed for ``purpose``, recent and new."""
        if not self.secret:
            raise CallbackRefused("this station has no callback secret configured")
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        signature = headers.get(SIGNATURE_HEADER, "")
        if not timestamp or not signature:
            raise CallbackRefused(f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required")
        if not hmac.compare_digest(
            signature.encode(), sign(self.secret, purpose, timestamp, body).encode()
        ):
            raise CallbackRefused("the signature does not match")
        try:
            sent = float(timestamp)
        except ValueError:
            raise CallbackRefused("the timestamp is not a number") from None
        now = self._wall()
        if not math.isfinite(sent) or abs(now - sent) > self.tolerance_s:
            raise CallbackRefused(f"the timestamp is more than {self.tolerance_s:g} s away")
        try:
            data = json.loads(body)
        except ValueError:
            raise CallbackRefused("the body is not JSON") from None
        event_id = data.get("event_id") if isinstance(data, dict) else None
        if not isinstance(event_id, str) or not 1 <= len(event_id) <= 100:
            raise CallbackRefused("the message has no event_id")
        self._forget(now)
        if event_id in self._seen:
            raise CallbackRefused(f"the message {event_id} was already received")
        self._seen[event_id] = sent
        return data  # type: ignore[no-any-return]

    def _forget(self, now: float) -> None:
        """Ids whose timestamps no longer pass the age check cannot be replayed anyway."""
        stale = [k for k, t in self._seen.items() if now - t > self.tolerance_s]
        for key in stale:
            del self._seen[key]


def parse_result(data: dict[str, Any]) -> CheckoutResult:
    """The callback's fields, checked; a CallbackRefused names the first that is wrong."""
    status = data.get("status")
    if status not in ("authorised", "declined"):
        raise CallbackRefused("'status' must be authorised or declined")
    texts = {}
    for key in ("event_id", "checkout_id", "reference", "currency", "card_last4", "message"):
        value = data.get(key, "")
        if not isinstance(value, str) or len(value) > 200:
            raise CallbackRefused(f"'{key}' must be text")
        texts[key] = value
    if not texts["checkout_id"]:
        raise CallbackRefused("'checkout_id' is required")
    amount = data.get("amount", 0.0)
    if isinstance(amount, bool) or not isinstance(amount, int | float) or not 0 <= amount <= 1e6:
        raise CallbackRefused("'amount' must be a number")
    for key in ("message", "checkout_id", "event_id"):  # a reference may be all digits
        if carries_card_number(texts[key]):
            raise CallbackRefused(f"'{key}' holds a card number; the station never takes one")
    card = texts["card_last4"]
    if status == "authorised" and not (texts["reference"] and len(card) == 4 and card.isdigit()):
        raise CallbackRefused("an authorisation needs a reference and the card's last four digits")
    if texts["reference"] and not reference_ok(texts["reference"]):
        raise CallbackRefused("'reference' may hold only letters, digits, '_' and '-'")
    return CheckoutResult(status=status, amount=round(float(amount), 2), **texts)
