"""The embedded default ledger: one SQLite file in WAL mode, one durable transaction per record."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import anyio.to_thread

from consentgate.consent.record import (
    GENESIS_HASH,
    ChainVerifier,
    ConsentRecord,
    RecordDraft,
    VerifyReport,
    format_time,
)
from consentgate.consent.store import StoreError

T = TypeVar("T")

SCHEMA_VERSION = 1
#: Records fetched per round trip when iterating.
BATCH = 500
SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL UNIQUE,
    consent_id TEXT NOT NULL,
    time TEXT NOT NULL,
    body TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_consent_id ON records (consent_id);
CREATE INDEX IF NOT EXISTS records_time ON records (time);
CREATE TABLE IF NOT EXISTS banners (
    fingerprint TEXT PRIMARY KEY,
    content TEXT NOT NULL,
    first_seen TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class SQLiteStore:
    """A ledger in one SQLite file; safe for several processes sharing the file.

    ``synchronous=FULL`` in WAL mode: a record is on disk before ``append`` returns.
    Each append runs in ``BEGIN IMMEDIATE``, so concurrent writers (threads or processes)
    serialize on SQLite's write lock and the chain never forks.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 10.0) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise StoreError(f"SQLite ledger folder {str(self.path.parent)!r} does not exist")
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite ledger {str(self.path)!r}: {exc}") from exc

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    async def _run(self, func: Callable[[], T]) -> T:
        def locked() -> T:
            with self._lock:
                try:
                    return func()
                except sqlite3.Error as exc:
                    raise StoreError(f"SQLite ledger {str(self.path)!r}: {exc}") from exc

        return await anyio.to_thread.run_sync(locked)

    async def append(self, draft: RecordDraft) -> ConsentRecord:
        """Seal ``draft`` onto the chain and commit it durably."""
        return await self._run(lambda: self._append(draft))

    def _append(self, draft: RecordDraft) -> ConsentRecord:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            existing = db.execute(
                "SELECT body, hash FROM records WHERE record_id = ?", (draft.record_id,)
            ).fetchone()
            if existing is not None:
                db.execute("ROLLBACK")
                return _load(existing[0], existing[1])
            head = db.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
            if head is None:
                anchor = self._anchor()
                seq, prev = anchor[0] + 1, anchor[1]
            else:
                seq, prev = head[0] + 1, head[1]
            record = ConsentRecord.seal(draft, seq=seq, prev_hash=prev)
            db.execute(
                "INSERT INTO records (seq, record_id, consent_id, time, body, hash) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.seq,
                    record.record_id,
                    record.consent_id,
                    format_time(record.time),
                    record.body().decode(),
                    record.hash,
                ),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return record

    def _anchor(self) -> tuple[int, str]:
        """Return (seq, hash) of the last record before the first kept one."""
        rows = dict(
            self._db.execute(
                "SELECT key, value FROM meta WHERE key IN ('anchor_seq', 'anchor_hash')"
            ).fetchall()
        )
        return int(rows.get("anchor_seq", 0)), rows.get("anchor_hash", GENESIS_HASH)

    async def records(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[ConsentRecord]:
        """Yield records with ``since <= time < until`` in chain order, in batches."""
        low = format_time(since) if since else ""
        high = format_time(until) if until else "~"
        after = -1
        while True:
            rows = await self._run(
                lambda after=after: self._db.execute(  # type: ignore[misc]
                    "SELECT seq, body, hash FROM records WHERE seq > ? AND time >= ? AND time < ?"
                    " ORDER BY seq LIMIT ?",
                    (after, low, high, BATCH),
                ).fetchall()
            )
            for _seq, body, digest in rows:
                yield _load(body, digest)
            if len(rows) < BATCH:
                return
            after = rows[-1][0]

    async def records_for(self, consent_id: str) -> list[ConsentRecord]:
        """Return every record of ``consent_id``, oldest first."""
        rows = await self._run(
            lambda: self._db.execute(
                "SELECT body, hash FROM records WHERE consent_id = ? ORDER BY seq",
                (consent_id,),
            ).fetchall()
        )
        return [_load(body, digest) for body, digest in rows]

    async def count(self) -> int:
        """Return the number of stored records."""
        row = await self._run(lambda: self._db.execute("SELECT count(*) FROM records").fetchone())
        return int(row[0])

    async def put_banner(self, fingerprint: str, content: str) -> None:
        """Keep the banner content for ``fingerprint``; the first version stored wins."""
        now = format_time(datetime.now(UTC))
        await self._run(
            lambda: self._db.execute(
                "INSERT OR IGNORE INTO banners (fingerprint, content, first_seen) VALUES (?, ?, ?)",
                (fingerprint, content, now),
            )
        )

    async def banner(self, fingerprint: str) -> str | None:
        """Return the stored banner content for ``fingerprint``."""
        row = await self._run(
            lambda: self._db.execute(
                "SELECT content FROM banners WHERE fingerprint = ?", (fingerprint,)
            ).fetchone()
        )
        return None if row is None else str(row[0])

    async def verify(self) -> VerifyReport:
        """Walk every record in seq order and check each link and hash."""
        anchor_seq, anchor_hash = await self._run(self._anchor)
        verifier = ChainVerifier(anchor=anchor_hash, first_seq=anchor_seq + 1)
        async for record in self.records():
            verifier.feed(record)
        return verifier.report()

    async def close(self) -> None:
        """Close the database connection."""
        await self._run(self._db.close)


def _load(body: str, digest: str) -> ConsentRecord:
    """Rebuild a record from its stored canonical body and hash."""
    values = json.loads(body)
    values["hash"] = digest
    return ConsentRecord.from_json(values)
