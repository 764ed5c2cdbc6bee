"""The station's own errors."""

from __future__ import annotations


class StationError(Exception):
    """A command the station refuses; ``status`` is the HTTP status that fits."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status
