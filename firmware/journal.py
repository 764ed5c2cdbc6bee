"""The records' journal and their one writer: every write lands in the journal first, then in
the database, in order, however long the database is away.

The writer thread takes each new entry, appends it to a JSON-lines file (or keeps it in memory when
no file can be written: a read-only card, a full disk), then applies the oldest entry to SQLite in
a transaction that also notes ``(boot, n)`` in ``journal_applied``, so an entry replayed after a
restart is never applied twice. A failure that may heal (locked, full, read-only, unreadable)
keeps the entry at the head and retries with a growing pause; anything else is logged and
skipped, so one bad entry cannot block every later one. When nothing is left to apply the file is
emptied. Samples are the only entries that may be thinned: past ``max_samples`` waiting, every
other one goes (the session row keeps the running energy, so no total is lost).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RETRY_FIRST_S = 0.1
RETRY_MAX_S = 1.0


@dataclass(slots=True, eq=False)
class Entry:
    """One write: ``op`` names it, ``args`` are plain JSON values, ``(boot, n)`` identify it."""

    boot: str
    n: int
    op: str
    args: dict[str, Any]
    journaled: bool = False
    on_done: Callable[[Any, BaseException | None], None] | None = field(default=None, repr=False)

    def line(self) -> str:
        data = {"boot": self.boot, "n": self.n, "op": self.op, "args": self.args}
        return json.dumps(data, separators=(",", ":")) + "\n"


class JournalFile:
    """An append-only JSON-lines file; ``path=None`` keeps nothing on disk."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.error: str | None = None
        self.lines = 0

    def load(self) -> list[Entry]:
        """The entries a previous run left unapplied; a torn last line is skipped."""
        if self.path is None or not self.path.exists():
            return []
        entries: list[Entry] = []
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            log.error("records journal %s cannot be read: %s", self.path, exc)
            return []
        for number, raw in enumerate(text.splitlines(), 1):
            try:
                data = json.loads(raw)
                entries.append(
                    Entry(str(data["boot"]), int(data["n"]), str(data["op"]), dict(data["args"]))
                )
            except (ValueError, KeyError, TypeError):
                log.warning("records journal %s line %d is torn; skipped", self.path, number)
        for entry in entries:
            entry.journaled = True
        self.lines = len(entries)
        return entries

    def append(self, entries: list[Entry]) -> bool:
        if self.path is None:
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write("".join(e.line() for e in entries))
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            if self.error is None:
                log.error(
                    "records journal %s cannot be written; kept in memory: %s", self.path, exc
                )
            self.error = str(exc)
            return False
        self.error = None
        self.lines += len(entries)
        return True

    def clear(self) -> None:
        if self.path is None or self.lines == 0:
            return
        try:
            with self.path.open("w", encoding="utf-8") as out:
                os.fsync(out.fileno())
            self.lines = 0
        except OSError as exc:
            log.warning("records journal %s cannot be emptied: %s", self.path, exc)


Apply = Callable[[sqlite3.Connection, Entry], Any]
Connect = Callable[[], sqlite3.Connection]
Transient = Callable[[BaseException], str | None]


class Writer:
    """The one thread that writes the records; :meth:`submit` never blocks."""

    def __init__(
        self,
        *,
        connect: Connect,
        apply: Apply,
        transient: Transient,
        journal: JournalFile,
        on_health: Callable[[str | None], None],
        max_samples: int = 2000,
    ) -> None:
        self._connect = connect
        self._apply = apply
        self._transient = transient
        self.journal = journal
        self._on_health = on_health
        self.max_samples = max_samples
        self._cond = threading.Condition()
        self._incoming: list[Entry] = []
        self._pending: deque[Entry] = deque()
        self._samples = 0
        self._stopping = False
        self._db: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._run, name="records-writer", daemon=True)
        self.error: str | None = None
        self.applied = 0
        self.draining = False
        self.thinned = 0

    @property
    def backlog(self) -> int:
        """Entries not yet in the database."""
        return len(self._pending) + len(self._incoming)

    def start(self) -> None:
        self._thread.start()

    def submit(self, entry: Entry) -> None:
        with self._cond:
            self._incoming.append(entry)
            self._cond.notify()

    def retry_now(self) -> None:
        with self._cond:
            self._retry_at = 0.0
            self._cond.notify()

    def stop(self, timeout: float) -> None:
        """A last attempt to write what waits, then the thread ends (the journal keeps the rest)."""
        with self._cond:
            self._stopping = True
            self._retry_at = 0.0
            self._cond.notify()
        self._thread.join(timeout)
        left = self.backlog
        if left:
            where = "in the journal" if self.journal.path and not self.journal.error else "lost"
            log.error("records: %d writes not in the database at shutdown (%s)", left, where)

    _retry_at = 0.0

    def _run(self) -> None:
        delay = RETRY_FIRST_S
        try:
            while True:
                with self._cond:
                    while not (
                        self._incoming
                        or self._stopping
                        or (self._pending and time.monotonic() >= self._retry_at)
                    ):
                        wait = self._retry_at - time.monotonic() if self._pending else None
                        self._cond.wait(wait)
                    new, self._incoming = self._incoming, []
                    stopping = self._stopping
                if new:
                    self._take(new)
                if time.monotonic() >= self._retry_at:
                    if self._drain():
                        delay = RETRY_FIRST_S
                        self._retry_at = 0.0
                    else:
                        self._retry_at = time.monotonic() + delay
                        delay = min(delay * 2, RETRY_MAX_S)
                if stopping and (not self._pending or self._retry_at > 0):
                    return
        finally:
            if self._db is not None:
                self._db.close()

    def _take(self, new: list[Entry]) -> None:
        fresh = [e for e in new if not e.journaled]
        if fresh and self.journal.append(fresh):
            for entry in fresh:
                entry.journaled = True
        self._pending.extend(new)
        self._samples += sum(1 for e in new if e.op == "sample")
        if self._samples > self.max_samples:
            self._thin()

    def _thin(self) -> None:
        """Every other waiting sample goes (never the oldest, which may be mid-retry, nor the
        newest, which carries the latest totals)."""
        kept: deque[Entry] = deque()
        seen = 0
        last = len(self._pending) - 1
        for index, entry in enumerate(self._pending):
            if entry.op == "sample" and 0 < index < last:
                seen += 1
                if seen % 2 == 0:
                    self.thinned += 1
                    self._done(entry, None, None)
                    continue
            kept.append(entry)
        self._pending = kept
        self._samples = sum(1 for e in kept if e.op == "sample")
        log.warning("records: samples thinned to %d while the database is away", self._samples)

    def _drain(self) -> bool:
        self.draining = True
        try:
            return self._drain_all()
        finally:
            self.draining = False

    def _drain_all(self) -> bool:
        while self._pending:
            entry = self._pending[0]
            try:
                if self._db is None:
                    self._db = self._connect()
                result = self._apply_once(self._db, entry)
            except Exception as exc:
                reason = self._transient(exc)
                if reason is not None:
                    self._health(reason)
                    if self._db is not None:  # a fresh connection on retry: it may be writable now
                        self._db.close()
                        self._db = None
                    return False
                log.error(
                    "records: %s %s could not be written and is dropped: %s",
                    entry.op,
                    entry.args.get("token", ""),
                    exc,
                )
                self._pending.popleft()
                self._done(entry, None, exc)
                continue
            self._pending.popleft()
            if entry.op == "sample":
                self._samples -= 1
            self.applied += 1
            self._done(entry, result, None)
        self.journal.clear()
        self._health(None)
        return True

    @staticmethod
    def _done(entry: Entry, result: Any, exc: BaseException | None) -> None:
        if entry.on_done is not None:
            entry.on_done(result, exc)

    def _apply_once(self, db: sqlite3.Connection, entry: Entry) -> Any:
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT n FROM journal_applied WHERE boot = ?", (entry.boot,)
            ).fetchone()
            if row is not None and row[0] >= entry.n:
                db.execute("ROLLBACK")
                return None
            result = self._apply(db, entry)
            db.execute(
                "INSERT INTO journal_applied (boot, n) VALUES (?, ?) "
                "ON CONFLICT (boot) DO UPDATE SET n = excluded.n",
                (entry.boot, entry.n),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    self._db = None
                    db.close()
            raise
        return result

    def _health(self, error: str | None) -> None:
        """Told on every failed attempt (at least once a second while it lasts), so that a
        listener who was told otherwise meanwhile hears it again; a recovery once."""
        if error == self.error:
            if error is not None:
                self._on_health(error)
            return
        if error is not None and self.error is None:
            log.error("records: %s (writes wait in the journal)", error)
        elif error is None:
            log.info("records: the database is writable again; the journal is applied")
        self.error = error
        self._on_health(error)
