"""Sample retention: meter samples older than ``sample_retention_days`` are deleted, hourly.

Sessions, faults and payments are kept; only the per-sample curve goes (a session's energy, peak
and state of charge stay in its row). The deletes run on the records' writer thread in batches,
each one journal entry, so the event loop only waits on a future and other writes interleave.
"""

from __future__ import annotations

import logging

from firmware.store import Store, StoreError
from hal.clock import Clock

log = logging.getLogger(__name__)

DAY_S = 86_400.0
BATCH = 5_000
EVERY_S = 3_600.0


class SampleRetention:
    def __init__(
        self, store: Store, clock: Clock, keep_days: float, *, every_s: float = EVERY_S
    ) -> None:
        self.store = store
        self.clock = clock
        self.keep_days = keep_days
        self.every_s = every_s

    async def run(self) -> None:
        """The service: a pass at start, then one every ``every_s`` (0 days: keep everything)."""
        if self.keep_days <= 0:
            return
        while True:
            await self.prune_once()
            await self.clock.sleep(self.every_s)

    async def prune_once(self, batch: int = BATCH) -> int:
        """One pass: batches until fewer than ``batch`` went. Errors are logged, never raised."""
        before = self.clock.wall() - self.keep_days * DAY_S
        total = 0
        while True:
            try:
                gone = await self.store.prune_samples(before, batch)
            except StoreError as exc:
                log.warning("records: samples not pruned this hour: %s", exc)
                break
            total += gone
            if gone < batch:
                break
        if total:
            log.info("records: %d samples older than %g days deleted", total, self.keep_days)
        return total
