"""What a card number looks like, so that the station can refuse to hold one (PCI scope).

A card number here is 13 to 19 digits, alone or in groups split by spaces or dashes, that passes
the Luhn check; digits inside a longer word (a token, an id with letters) do not count.
"""

from __future__ import annotations

import re

CARD_LIKE = re.compile(r"(?<![0-9A-Za-z_])\d(?:[ -]?\d){12,18}(?![0-9A-Za-z_])")


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


def carries_card_number(text: str) -> bool:
    for match in CARD_LIKE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            return True
    return False
