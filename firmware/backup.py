"""``pev-charger backup PATH``: a consistent copy of the records while the station runs.

SQLite's online backup API copies the database page by page through its own read transaction, so
the copy is one consistent state even while the daemon's writer commits (WAL mode: readers and the
writer do not block each other). The copy is written beside ``PATH`` and renamed into place only
after SQLite's integrity check passed, so ``PATH`` is never half a backup. Writes still waiting in
the records' journal (while the database was locked or full) are not in the database yet, hence
not in the copy.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

PAGES_PER_STEP = 1024
"""Pages copied per step (4 MiB at 4 KiB pages); the writer may commit between steps."""


class BackupError(Exception):
    """The copy could not be made; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    size_bytes: int
    sessions: int


def backup_records(source: str | Path, target: str | Path) -> BackupResult:
    """Copy the records at ``source`` to ``target`` (a file; an existing one is replaced)."""
    src_path = Path(source)
    dst_path = Path(target)
    if not src_path.is_file():
        raise BackupError(f"no records at {src_path}")
    if dst_path.resolve() == src_path.resolve():
        raise BackupError("the backup must not be the records themselves")
    if not dst_path.parent.is_dir():
        raise BackupError(f"no directory {dst_path.parent} for the backup")
    partial = dst_path.with_name(f".{dst_path.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        src = sqlite3.connect(f"file:{src_path}?mode=ro", uri=True, timeout=5.0)
        try:
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst, pages=PAGES_PER_STEP)
                check = dst.execute("PRAGMA integrity_check").fetchone()[0]
                if check != "ok":
                    raise BackupError(f"the copy failed SQLite's integrity check: {check}")
                sessions = int(dst.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])
            finally:
                dst.close()
        finally:
            src.close()
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, dst_path)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy the records at {src_path}: {exc}") from None
    except OSError as exc:
        raise BackupError(f"cannot write the backup {dst_path}: {exc}") from None
    finally:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
    return BackupResult(dst_path, dst_path.stat().st_size, sessions)
