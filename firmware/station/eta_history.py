"""What earlier charges of the same model taught the station about its battery.

A vehicle declares its chemistry, cells and capacity, but not its cut-off current, its resistance,
how far its highest cell group runs ahead, or how much charge a declared watt-hour really holds.
Each session that ends full measures them; the next vehicle of the same model starts from them.
A model is known by what it declares (chemistry, cells, capacity, maximum current).

The figures live in memory and, when a path is given, in their own table of the station's SQLite
file, through their own connection, written off the event loop (:meth:`EtaHistory.save`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

WEIGHT_CAP = 8
"""The newest session counts at least 1/8: a model's figures follow its ageing packs."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS eta_models (
    model TEXT PRIMARY KEY,
    sessions INTEGER NOT NULL,
    capacity_ratio REAL NOT NULL,
    cutoff_c REAL NOT NULL,
    r_group_ohm REAL NOT NULL,
    lead_pct REAL NOT NULL
)
"""


def model_key(chemistry: str, cells: int, capacity_wh: float, i_max_a: float) -> str:
    return f"{chemistry}/{cells}S/{capacity_wh:.0f}Wh/{i_max_a:.2f}A"


@dataclass(frozen=True, slots=True)
class Learned:
    """What one full session measured (or several, averaged)."""

    capacity_ratio: float
    """Charge per % of state of charge, over what the declared capacity says."""
    cutoff_c: float
    """The current at which the vehicle said full, as a fraction of its capacity (C)."""
    r_group_ohm: float
    lead_pct: float
    sessions: int = 1

    def merged(self, new: Learned) -> Learned:
        n = min(self.sessions, WEIGHT_CAP - 1)
        w = 1.0 / (n + 1)

        def mix(old: float, fresh: float) -> float:
            return old + (fresh - old) * w

        return Learned(
            capacity_ratio=mix(self.capacity_ratio, new.capacity_ratio),
            cutoff_c=mix(self.cutoff_c, new.cutoff_c),
            r_group_ohm=mix(self.r_group_ohm, new.r_group_ohm),
            lead_pct=mix(self.lead_pct, new.lead_pct),
            sessions=self.sessions + 1,
        )


class EtaHistory:
    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.models: dict[str, Learned] = {}
        self._dirty: set[str] = set()
        self._saving: asyncio.Task[None] | None = None

    def get(self, model: str) -> Learned | None:
        return self.models.get(model)

    def learn(self, model: str, figures: Learned) -> Learned:
        old = self.models.get(model)
        merged = figures if old is None else old.merged(figures)
        self.models[model] = merged
        self._dirty.add(model)
        self._save_soon()
        return merged

    def _save_soon(self) -> None:
        """Write in a thread when a loop runs (the daemon); :meth:`aclose` awaits the write."""
        if self.path is None or (self._saving is not None and not self._saving.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._saving = loop.create_task(self._save_logged(), name="eta-history-save")

    async def _save_logged(self) -> None:
        try:
            await self.save()
        except (sqlite3.Error, OSError) as exc:
            # What was learned stays in memory; only the restart loses it.
            log.warning("time-to-full history not saved: %s", exc)

    async def aclose(self) -> None:
        if self._saving is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._saving
        await self._save_logged()

    # --- persistence (blocking: call through load/save, which run in a thread) ------------------

    def _connect(self) -> sqlite3.Connection:
        assert self.path is not None
        db = sqlite3.connect(self.path, timeout=5.0)
        db.execute(_SCHEMA)
        return db

    def load_now(self) -> None:
        if self.path is None:
            return
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT model, sessions, capacity_ratio, cutoff_c, r_group_ohm, lead_pct"
                " FROM eta_models"
            ).fetchall()
        finally:
            db.close()
        for model, sessions, ratio, cutoff, r, lead in rows:
            self.models[str(model)] = Learned(
                float(ratio), float(cutoff), float(r), float(lead), int(sessions)
            )

    def save_now(self) -> int:
        if self.path is None or not self._dirty:
            return 0
        rows = [
            (m, f.sessions, f.capacity_ratio, f.cutoff_c, f.r_group_ohm, f.lead_pct)
            for m in sorted(self._dirty)
            if (f := self.models.get(m)) is not None
        ]
        self._dirty.clear()
        db = self._connect()
        try:
            with db:
                db.executemany("INSERT OR REPLACE INTO eta_models VALUES (?, ?, ?, ?, ?, ?)", rows)
        finally:
            db.close()
        return len(rows)

    async def load(self) -> None:
        if self.path is not None:  # no file, no thread (none may run under a virtual-time loop)
            await asyncio.to_thread(self.load_now)

    async def save(self) -> int:
        if self.path is None or not self._dirty:
            return 0
        return await asyncio.to_thread(self.save_now)
