"""The embedded default ledger: one SQLite file in WAL mode, one durable transaction per record."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from consentgate.consent.record import (
    GENESIS_HASH,
    ChainVerifier,
    ConsentRecord,
    RecordDraft,
    StoredRecord,
    VerifyReport,
    format_time,
)
from consentgate.consent.store import (
    AUDIT_MAX_ENTRIES,
    AuditEntry,
    AuditKey,
    ProgressCallback,
    PurgeReport,
    StoreError,
    StoreUnavailable,
)

T = TypeVar("T")

SCHEMA_VERSION = 2
#: Records fetched per round trip when iterating.
BATCH = 2000
SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL UNIQUE,
    consent_id TEXT NOT NULL,
    time TEXT NOT NULL,
    body TEXT NOT NULL,
    hash TEXT NOT NULL,
    personal TEXT,
    redacted_at TEXT
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
CREATE TABLE IF NOT EXISTS audit (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    count INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (kind, name, path)
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
            (version,) = self._db.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite ledger {str(self.path)!r}: {exc}") from exc
        if version != str(SCHEMA_VERSION):
            self._db.close()
            raise StoreError(
                f"SQLite ledger {str(self.path)!r} has schema version {version}, this version "
                f"of consentgate reads {SCHEMA_VERSION}"
            )

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
        return (await self._run(lambda: self._append([draft])))[0]

    async def append_many(self, drafts: Sequence[RecordDraft]) -> list[ConsentRecord]:
        """Seal ``drafts`` in order and commit them in one durable transaction."""
        if not drafts:
            return []
        return await self._run(lambda: self._append(drafts))

    def _append(self, drafts: Sequence[RecordDraft]) -> list[ConsentRecord]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            head = db.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = self._anchor() if head is None else (head[0], head[1])
            sealed: list[ConsentRecord] = []
            fresh: dict[str, ConsentRecord] = {}
            rows = []
            for draft in drafts:
                if draft.record_id in fresh:
                    sealed.append(fresh[draft.record_id])
                    continue
                existing = db.execute(
                    "SELECT seq, time, body, hash, personal, redacted_at FROM records "
                    "WHERE record_id = ?",
                    (draft.record_id,),
                ).fetchone()
                if existing is not None:
                    sealed.append(_stored(existing).record())
                    continue
                seq += 1
                record, stored = ConsentRecord.seal_stored(draft, seq=seq, prev_hash=prev)
                prev = record.hash
                rows.append(
                    (
                        record.seq,
                        record.record_id,
                        record.consent_id,
                        stored.time,
                        stored.body,
                        record.hash,
                        stored.personal,
                    )
                )
                fresh[record.record_id] = record
                sealed.append(record)
            db.executemany(
                "INSERT INTO records (seq, record_id, consent_id, time, body, hash, personal) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            if rows:
                # The head, kept apart from the records: a chain cut off at the end shows.
                db.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    (("head_seq", str(seq)), ("head_hash", prev)),
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return sealed

    def _head(self, db: sqlite3.Connection | None = None) -> tuple[int, str] | None:
        """Return (seq, hash) of the last record appended, as kept in meta."""
        rows = dict(
            (db or self._db)
            .execute("SELECT key, value FROM meta WHERE key IN ('head_seq', 'head_hash')")
            .fetchall()
        )
        if "head_seq" not in rows:
            return None
        return int(rows["head_seq"]), rows["head_hash"]

    def _anchor(self, db: sqlite3.Connection | None = None) -> tuple[int, str]:
        """Return (seq, hash) of the last record before the first kept one."""
        rows = dict(
            (db or self._db)
            .execute("SELECT key, value FROM meta WHERE key IN ('anchor_seq', 'anchor_hash')")
            .fetchall()
        )
        return int(rows.get("anchor_seq", 0)), rows.get("anchor_hash", GENESIS_HASH)

    async def stored(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[StoredRecord]:
        """Yield stored records with ``since <= time < until`` in chain order, in batches."""
        async for batch in self._batches(since, until):
            for stored in batch:
                yield stored

    async def _batches(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        db: sqlite3.Connection | None = None,
    ) -> AsyncIterator[list[StoredRecord]]:
        low = format_time(since) if since else ""
        high = format_time(until) if until else "~"
        make = StoredRecord._make

        connection = db if db is not None else self._db

        def fetch(after: int) -> list[tuple[Any, ...]]:
            return connection.execute(
                "SELECT 0, seq, time, body, hash, personal, redacted_at FROM records "
                "WHERE seq > ? AND time >= ? AND time < ? ORDER BY seq LIMIT ?",
                (after, low, high, BATCH),
            ).fetchall()

        # The next batch is read (SQLite releases the GIL) while this one is consumed.
        pending: asyncio.Task[list[tuple[Any, ...]]] | None = asyncio.ensure_future(
            self._run(functools.partial(fetch, -1))
        )
        try:
            while pending is not None:
                rows = await pending
                pending = None
                if len(rows) == BATCH:
                    after = rows[-1][1]
                    pending = asyncio.ensure_future(self._run(functools.partial(fetch, after)))
                if rows:
                    yield list(map(make, rows))
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, StoreError):
                    await pending

    async def records(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[ConsentRecord]:
        """Yield decoded records with ``since <= time < until`` in chain order."""
        async for stored in self.stored(since=since, until=until):
            yield stored.record()

    async def records_for(self, consent_id: str) -> list[ConsentRecord]:
        """Return every record of ``consent_id``, oldest first."""
        rows = await self._run(
            lambda: self._db.execute(
                "SELECT seq, time, body, hash, personal, redacted_at FROM records "
                "WHERE consent_id = ? ORDER BY seq",
                (consent_id,),
            ).fetchall()
        )
        return [_stored(row).record() for row in rows]

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

    async def add_audit(self, counts: Mapping[AuditKey, int], *, at: datetime) -> None:
        """Add tracker-audit counts in one transaction (bounded by ``AUDIT_MAX_ENTRIES``)."""
        if not counts:
            return
        seen = format_time(at)

        def add() -> None:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                (size,) = db.execute("SELECT count(*) FROM audit").fetchone()
                for (kind, name, path), count in counts.items():
                    cursor = db.execute(
                        "UPDATE audit SET count = count + ?, last_seen = max(last_seen, ?) "
                        "WHERE kind = ? AND name = ? AND path = ?",
                        (count, seen, kind, name, path),
                    )
                    if cursor.rowcount == 0 and size < AUDIT_MAX_ENTRIES:
                        db.execute(
                            "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?)",
                            (kind, name, path, count, seen, seen),
                        )
                        size += 1
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        await self._run(add)

    async def audit(self) -> list[AuditEntry]:
        """Return the tracker-audit findings, most frequent first."""
        rows = await self._run(
            lambda: self._db.execute(
                "SELECT kind, name, path, count, first_seen, last_seen FROM audit "
                "ORDER BY count DESC, kind, name, path"
            ).fetchall()
        )
        return [AuditEntry(*row) for row in rows]

    async def clear_audit(self) -> int:
        """Forget every tracker-audit finding."""
        cursor = await self._run(lambda: self._db.execute("DELETE FROM audit"))
        return int(cursor.rowcount)

    async def verify(self, progress: ProgressCallback | None = None) -> VerifyReport:
        """Walk every record in seq order and check each link and hash.

        Reads through a connection of its own in one read transaction, so a purge or
        appends by other processes meanwhile do not show as gaps (WAL keeps the snapshot).
        """
        snapshot = await anyio.to_thread.run_sync(self._snapshot)
        try:
            anchor_seq, anchor_hash = await self._run(lambda: self._anchor(snapshot))
            head = await self._run(lambda: self._head(snapshot))
            verifier = ChainVerifier(anchor=anchor_hash, first_seq=anchor_seq + 1)
            count = 0
            last: StoredRecord | None = None
            async for batch in self._batches(db=snapshot):
                feed = verifier.feed_stored
                for stored in batch:
                    feed(stored)
                last = batch[-1]
                count += len(batch)
                if progress is not None:
                    progress(count)
        finally:
            await anyio.to_thread.run_sync(snapshot.close)
        report = verifier.report()
        if head is None:
            return report
        head_seq, head_hash = head
        if (last.seq if last else anchor_seq) < head_seq:
            ends = f", the chain ends at seq {last.seq}" if last else ""
            problem = f"chain 0: last record missing: head says seq {head_seq}{ends}"
        elif last is not None and last.seq == head_seq and last.hash != head_hash:
            problem = (
                f"chain 0 seq {last.seq}: does not match the chain's head "
                "(the last record was altered)"
            )
        else:
            return report
        return VerifyReport(
            ok=False,
            checked=report.checked,
            problems=(*report.problems, problem),
            chains=report.chains,
        )

    def _snapshot(self) -> sqlite3.Connection:
        """Open a read connection holding one consistent view of the ledger."""
        try:
            db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            db.execute("BEGIN")
            db.execute("SELECT count(*) FROM meta").fetchone()  # the snapshot starts here
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite ledger {str(self.path)!r}: {exc}") from exc
        return db

    async def purge(self, before: datetime, *, dry_run: bool = False) -> PurgeReport:
        """Delete the leading records older than ``before``; their last one becomes the anchor."""
        cutoff = format_time(before)

        def purge() -> PurgeReport:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                # The chain's prefix up to (not including) its first record new enough.
                keep = db.execute(
                    "SELECT min(seq) FROM records WHERE time >= ?", (cutoff,)
                ).fetchone()[0]
                last = db.execute(
                    "SELECT seq, hash FROM records WHERE seq < ? ORDER BY seq DESC LIMIT 1",
                    (keep if keep is not None else 2**62,),
                ).fetchone()
                if last is None:
                    db.execute("ROLLBACK")
                    return PurgeReport(0, before, (), dry_run)
                (purged,) = db.execute(
                    "SELECT count(*) FROM records WHERE seq <= ?", (last[0],)
                ).fetchone()
                if dry_run:
                    db.execute("ROLLBACK")
                else:
                    db.execute("DELETE FROM records WHERE seq <= ?", (last[0],))
                    db.executemany(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                        (("anchor_seq", str(last[0])), ("anchor_hash", last[1])),
                    )
                    db.execute("COMMIT")
                return PurgeReport(purged, before, ((0, last[0], last[1]),), dry_run)
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

        return await self._run(purge)

    async def erase(self, consent_id: str, *, at: datetime) -> int:
        """Blank the personal fields of ``consent_id``'s records; the digests stay."""
        cursor = await self._run(
            lambda: self._db.execute(
                "UPDATE records SET personal = NULL, redacted_at = ? "
                "WHERE consent_id = ? AND personal IS NOT NULL",
                (format_time(at), consent_id),
            )
        )
        return int(cursor.rowcount)

    async def ping(self) -> None:
        """Check the database file still answers."""
        try:
            await self._run(lambda: self._db.execute("SELECT 1").fetchone())
        except StoreError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def close(self) -> None:
        """Close the database connection."""
        await self._run(self._db.close)


def _stored(row: tuple[int, str, str, str, str | None, str | None]) -> StoredRecord:
    """Return a row ``(seq, time, body, hash, personal, redacted_at)`` as a stored record."""
    seq, time, body, digest, personal, redacted_at = row
    return StoredRecord(0, seq, time, body, digest, personal, redacted_at)
