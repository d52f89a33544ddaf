"""The spool and the ledger wrapper: decisions survive a slow or failing store, exactly once."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consentgate.config import LedgerSettings
from consentgate.consent import Ledger, RecordDraft, Spool, SpoolError, StoreError
from consentgate.consent.spool import SPOOL_NAME
from consentgate.consent.sqlite import SQLiteStore

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def draft(n: int, consent_id: str | None = None) -> RecordDraft:
    return RecordDraft(
        consent_id=consent_id or f"{n:022d}",
        time=T0 + timedelta(seconds=n),
        action="accept-all" if n % 2 else "reject-all",
        granted=("matomo",) if n % 2 else (),
        refused=() if n % 2 else ("matomo",),
        revision=1,
        fingerprint="f" * 64,
        language="de",
        page_url="https://www.example.de/strom",
        ip="203.0.113.0",
        browser="Firefox",
        os="Linux",
    )


def tear(path: Path) -> None:
    """Append half a line, as a process killed mid-write would leave."""
    with open(path, "ab") as out:
        out.write(b'0badc0de\t{"consent_id": "tor')


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "ledger.db", timeout=30)
    yield store
    await store.close()


def ledger_settings(tmp_path: Path, **changes: object) -> LedgerSettings:
    values: dict[str, object] = {"spool_directory": str(tmp_path / "spool"), "timeout_seconds": 0.3}
    values.update(changes)
    return LedgerSettings.model_validate(values)


class FailingStore:
    """Forwards to a real store, failing or stalling appends while told to."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.failing = False
        self.stall = asyncio.Event()
        self.stall.set()

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    async def append_many(self, drafts: list[RecordDraft]) -> object:
        if self.failing:
            raise StoreError("store down (test)")
        await self.stall.wait()
        return await self.store.append_many(drafts)


async def test_spool_round_trip_keeps_order_and_every_field(
    tmp_path: Path, sqlite_store: SQLiteStore
) -> None:
    spool = Spool(tmp_path / "spool")
    assert not spool.pending()
    drafts = [draft(n) for n in range(30)]
    for d in drafts[:10]:
        spool.write([d])
    spool.write(drafts[10:])
    assert spool.pending()
    assert spool.depth().depth == 30
    assert spool.depth().oldest == "2026-11-21T10:00:00.000000Z"
    report = await spool.replay(sqlite_store)
    assert (report.replayed, report.duplicates, report.remaining) == (30, 0, 0)
    assert not spool.pending()
    assert spool.depth().depth == 0
    stored = [r async for r in sqlite_store.records()]
    assert [r.record_id for r in stored] == [d.record_id for d in drafts]
    for record, original in zip(stored, drafts, strict=True):
        assert (record.salt, record.ip, record.time) == (original.salt, original.ip, original.time)
    assert (await sqlite_store.verify()).ok


async def test_replay_cut_short_stores_nothing_twice(
    tmp_path: Path, sqlite_store: SQLiteStore
) -> None:
    """A crash after some spooled records reached the store, before the file was deleted."""
    spool = Spool(tmp_path / "spool")
    drafts = [draft(n) for n in range(10)]
    spool.write(drafts)
    await sqlite_store.append_many(drafts[:6])
    report = await spool.replay(sqlite_store)
    assert (report.replayed, report.duplicates) == (10, 6)
    assert await sqlite_store.count() == 10
    assert [r.record_id async for r in sqlite_store.records()] == [d.record_id for d in drafts]


async def test_torn_last_line_is_set_aside(tmp_path: Path, sqlite_store: SQLiteStore) -> None:
    spool = Spool(tmp_path / "spool")
    spool.write([draft(1), draft(2)])
    tear(tmp_path / "spool" / SPOOL_NAME)
    report = await spool.replay(sqlite_store)
    assert (report.replayed, report.corrupt) == (2, 1)
    assert await sqlite_store.count() == 2
    kept = list((tmp_path / "spool").glob("corrupt-*.jsonl"))
    assert len(kept) == 1 and b"tor" in kept[0].read_bytes()


async def test_failed_replay_keeps_everything_for_the_next(
    tmp_path: Path, sqlite_store: SQLiteStore
) -> None:
    failing = FailingStore(sqlite_store)
    failing.failing = True
    spool = Spool(tmp_path / "spool")
    spool.write([draft(n) for n in range(5)])
    with pytest.raises(StoreError):
        await spool.replay(failing)  # type: ignore[arg-type]
    assert spool.depth().depth == 5
    spool.write([draft(5)])  # a new decision arrives meanwhile: it goes after the others
    failing.failing = False
    report = await spool.replay(failing)  # type: ignore[arg-type]
    assert report.replayed == 6
    assert [r.consent_id async for r in sqlite_store.records()] == [f"{n:022d}" for n in range(6)]


def test_spool_write_error_names_the_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SpoolError, match="cannot spool to") as caught:
        Spool(blocker / "spool").write([draft(1)])
    assert str(blocker) in str(caught.value)


def test_spool_is_shared_by_processes(tmp_path: Path) -> None:
    """Four processes append at once: every line intact and parsed."""
    directory = tmp_path / "spool"
    pids = []
    for worker in range(4):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                spool = Spool(directory)
                for n in range(50):
                    spool.write([draft(worker * 1000 + n)])
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    assert Spool(directory).depth().depth == 200


async def test_ledger_stores_directly_while_the_store_answers(
    tmp_path: Path, sqlite_store: SQLiteStore
) -> None:
    ledger = Ledger(sqlite_store, ledger_settings(tmp_path))
    outcomes = await asyncio.gather(*(ledger.record(draft(n)) for n in range(40)))
    assert all(o.stored for o in outcomes)
    assert ledger.spooled == 0
    assert await sqlite_store.count() == 40
    # Concurrent decisions were committed together, in the order they were made.
    assert [r.consent_id async for r in sqlite_store.records()] == [f"{n:022d}" for n in range(40)]
    assert not (tmp_path / "spool").exists(), "the spool is only created when needed"


async def test_ledger_spools_while_down_and_replays_in_order(
    tmp_path: Path, sqlite_store: SQLiteStore
) -> None:
    failing = FailingStore(sqlite_store)
    ledger = Ledger(failing, ledger_settings(tmp_path))  # type: ignore[arg-type]
    first = await ledger.record(draft(0))
    failing.failing = True
    down = [await ledger.record(draft(n)) for n in range(1, 6)]
    failing.failing = False
    # The store is back, but earlier decisions still wait: this one queues behind them.
    behind = await ledger.record(draft(6))
    assert first.stored and not any(o.stored for o in down) and not behind.stored
    assert (await ledger.health())["spool"]["depth"] == 6
    report = await ledger.replay()
    assert report is not None and report.replayed == 6
    assert [r.consent_id async for r in sqlite_store.records()] == [f"{n:022d}" for n in range(7)]
    assert (await ledger.record(draft(7))).stored, "direct again once the spool is empty"
    assert (await sqlite_store.verify()).ok


async def test_slow_store_times_out_into_the_spool_and_is_stored_once(
    tmp_path: Path, sqlite_store: SQLiteStore
) -> None:
    """A real SQLite lock held by another connection makes the store slower than the timeout."""
    ledger = Ledger(sqlite_store, ledger_settings(tmp_path, timeout_seconds=0.2))
    blocker = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        outcome = await ledger.record(draft(1))
        assert not outcome.stored, "spooled after the timeout"
        assert ledger.spool.pending()
    finally:
        await asyncio.to_thread(blocker.execute, "ROLLBACK")
        blocker.close()
    await asyncio.sleep(0.2)  # the timed-out append finishes in the background
    report = await ledger.replay()
    assert report is not None and report.replayed == 1
    assert await sqlite_store.count() == 1, "stored by the late append; the replay is deduplicated"
    assert (await sqlite_store.verify()).ok


async def test_neither_store_nor_spool_raises(tmp_path: Path, sqlite_store: SQLiteStore) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    failing = FailingStore(sqlite_store)
    failing.failing = True
    settings = LedgerSettings(spool_directory=str(blocker / "spool"), timeout_seconds=0.3)
    ledger = Ledger(failing, settings)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="spool failed too"):
        await ledger.record(draft(1))


async def test_background_work_replays_and_purges_without_traffic(
    tmp_path: Path, sqlite_store: SQLiteStore
) -> None:
    now = T0 + timedelta(days=1200)
    await sqlite_store.append_many([draft(n) for n in range(3)])  # 1,200 days old
    Spool(tmp_path / "spool").write([dataclasses.replace(draft(10), time=now)])
    ledger = Ledger(
        sqlite_store, ledger_settings(tmp_path, replay_interval_seconds=0.05), clock=lambda: now
    )
    ledger.start()
    try:
        for _ in range(100):
            if not ledger.spool.pending() and await sqlite_store.count() == 1:
                break
            await asyncio.sleep(0.05)
    finally:
        await ledger.stop()
    # The three old records are purged (retention 1,095 days); the spooled one is stored.
    assert [r.consent_id async for r in sqlite_store.records()] == [f"{10:022d}"]
    assert (await sqlite_store.verify()).ok


async def test_decision_after_a_torn_line_is_not_lost(
    tmp_path: Path, sqlite_store: SQLiteStore
) -> None:
    """A writer killed mid-line; the next (acknowledged) write must stay readable."""
    spool = Spool(tmp_path / "spool")
    spool.write([draft(1)])
    tear(tmp_path / "spool" / SPOOL_NAME)
    spool.write([draft(2)])
    report = await spool.replay(sqlite_store)
    assert (report.replayed, report.corrupt) == (2, 1)
    assert [r.consent_id async for r in sqlite_store.records()] == [f"{1:022d}", f"{2:022d}"]


async def test_long_spool_replays_in_bounded_batches(
    tmp_path: Path, sqlite_store: SQLiteStore
) -> None:
    spool = Spool(tmp_path / "spool")
    spool.write([draft(n) for n in range(1200)])
    batches: list[int] = []
    original = sqlite_store.append_many

    async def counting(drafts: list[RecordDraft]) -> object:
        batches.append(len(drafts))
        return await original(drafts)

    sqlite_store.append_many = counting  # type: ignore[method-assign,assignment]
    report = await spool.replay(sqlite_store)
    assert report.replayed == 1200
    assert max(batches) <= 500 and sum(batches) == 1200
    assert await sqlite_store.count() == 1200


async def test_stalled_store_and_failed_spool_answer_truthfully(
    tmp_path: Path, sqlite_store: SQLiteStore
) -> None:
    """Store too slow, spool unusable: the decision is withdrawn, not stored behind a 503."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    stalling = FailingStore(sqlite_store)
    stalling.stall.clear()
    settings = LedgerSettings(spool_directory=str(blocker / "spool"), timeout_seconds=0.2)
    ledger = Ledger(stalling, settings)  # type: ignore[arg-type]
    first = asyncio.ensure_future(ledger.record(draft(1)))  # in flight, stalled
    await asyncio.sleep(0.05)
    with pytest.raises(StoreError, match="nothing was recorded"):
        await ledger.record(draft(2))  # still queued behind it: withdrawn
    stalling.stall.set()
    outcome = await first  # in flight: its real outcome is the answer
    assert outcome.stored
    await asyncio.sleep(0.05)
    assert [r.consent_id async for r in sqlite_store.records()] == [f"{1:022d}"]


async def test_verify_sees_one_snapshot_while_another_process_purges(
    tmp_path: Path, sqlite_store: SQLiteStore
) -> None:
    await sqlite_store.append_many([draft(n) for n in range(5000)])
    purged = False

    def purge_meanwhile(checked: int) -> None:
        nonlocal purged
        if purged:
            return
        purged = True
        other = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        seq, digest = other.execute("SELECT seq, hash FROM records WHERE seq = 3000").fetchone()
        other.execute("DELETE FROM records WHERE seq <= 3000")
        other.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            (("anchor_seq", str(seq)), ("anchor_hash", digest)),
        )
        other.execute("COMMIT")
        other.close()

    report = await sqlite_store.verify(purge_meanwhile)
    assert purged
    assert report.ok and report.checked == 5000, report.problems[:3]
    after = await sqlite_store.verify()
    assert after.ok and after.checked == 2000
