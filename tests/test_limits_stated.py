"""The limits a builder must know are stated where an operator reads first: the README and the
hardware README say what is prototype and not certified, the touch-safety limit and that the
energy figures are not legal for trade."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("document", ["README.md", "hardware/README.md"])
def test_the_limits_are_stated_plainly(document: str) -> None:
    text = " ".join((ROOT / document).read_text(encoding="utf-8").split())
    for needed in ("prototype", "certified", "60 V DC", "legal for trade", "MID", "Eichrecht"):
        assert needed in text, f"{document} does not say {needed!r}"
