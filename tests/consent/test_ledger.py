"""The SQLite ledger and its hash chain: durable appends, queries, and tamper detection."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from consentgate.consent import ConsentRecord, open_store, verify_chain
from consentgate.consent.sqlite import SQLiteStore
from consentgate.consent.store import Store, StoreError
from tests.consent.drafts import T0, draft


async def fill(store: Store, count: int) -> list[ConsentRecord]:
    return [await store.append(draft(n, consent_id=f"{n:022d}")) for n in range(count)]


def test_sqlite_store_satisfies_the_protocol(store: SQLiteStore) -> None:
    assert isinstance(store, Store)


async def test_append_seals_a_chain(store: SQLiteStore) -> None:
    records = await fill(store, 3)
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == "0" * 64
    assert records[1].prev_hash == records[0].hash
    assert records[2].prev_hash == records[1].hash
    assert all(r.hash == r.computed_hash() for r in records)
    assert (await store.verify()).ok
    assert await store.count() == 3


async def test_record_holds_every_field(store: SQLiteStore) -> None:
    record = await store.append(draft(action="withdraw", granted=("youtube", "matomo")))
    stored = (await store.records_for(record.consent_id))[0]
    assert stored == record
    assert stored.granted == ("matomo", "youtube"), "stored sorted, canonical"
    assert stored.to_json()["time"] == "2026-11-21T10:00:00.000000Z"
    assert set(stored.to_json()) == {
        "record_id", "chain", "seq", "consent_id", "time", "action", "granted", "refused",
        "revision", "fingerprint", "language", "page_url", "ip", "browser", "os", "salt",
        "personal_digest", "redacted_at", "prev_hash", "hash", "format",
    }  # fmt: skip


async def test_retried_append_is_stored_once(store: SQLiteStore) -> None:
    first = draft(1)
    a = await store.append(first)
    b = await store.append(first)
    assert a == b
    assert await store.count() == 1


async def test_records_are_durable_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = SQLiteStore(path)
    written = await fill(ledger, 5)
    await ledger.close()
    reopened = open_store(f"sqlite:///{path}")
    assert [r async for r in reopened.records()] == written
    appended = await reopened.append(draft(9))
    assert appended.prev_hash == written[-1].hash
    assert (await reopened.verify()).ok
    await reopened.close()


async def test_time_range_and_consent_id_queries(store: SQLiteStore) -> None:
    await fill(store, 10)
    window = [
        r.seq
        async for r in store.records(
            since=T0 + timedelta(minutes=3), until=T0 + timedelta(minutes=6)
        )
    ]
    assert window == [4, 5, 6]
    assert [r.seq for r in await store.records_for(f"{7:022d}")] == [8]
    assert await store.records_for("unknown") == []


async def test_iteration_crosses_batches(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("consentgate.consent.sqlite.BATCH", 3)
    await fill(store, 10)
    assert [r.seq async for r in store.records()] == list(range(1, 11))


async def test_banner_versions_are_kept_first_write_wins(store: SQLiteStore) -> None:
    await store.put_banner("a" * 64, '{"title":"Datenschutz"}')
    await store.put_banner("a" * 64, '{"title":"changed"}')
    assert await store.banner("a" * 64) == '{"title":"Datenschutz"}'
    assert await store.banner("b" * 64) is None


async def test_concurrent_appends_keep_one_chain(store: SQLiteStore) -> None:
    await asyncio.gather(*(store.append(draft(n)) for n in range(50)))
    report = await store.verify()
    assert report.ok and report.checked == 50


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from consentgate.consent import RecordDraft
    from consentgate.consent.sqlite import SQLiteStore

    async def main():
        store = SQLiteStore(sys.argv[1])
        for n in range(int(sys.argv[2])):
            await store.append(RecordDraft(
                consent_id=sys.argv[3] + f"{n:06d}", time=datetime.now(UTC), action="reject-all",
                granted=(), refused=("matomo",), revision=1, fingerprint="f" * 64,
                language="de", page_url="", ip="", browser="Other", os="Other"))
        await store.close()
    asyncio.run(main())
    """
)


def test_two_processes_appending_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    SQLiteStore(path)  # create the schema before the race
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), "40", tag * 16])
        for tag in ("a", "b")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    report = asyncio.run(SQLiteStore(path).verify())
    assert report.ok, str(report)
    assert report.checked == 80


def tamper(path: Path, sql: str, *params: object) -> None:
    db = sqlite3.connect(path)
    with db:
        db.execute(sql, params)
    db.close()


async def test_verify_detects_an_edited_record(tmp_path: Path) -> None:
    ledger = SQLiteStore(tmp_path / "l.db")
    await fill(ledger, 5)
    body = json.loads(
        await ledger._run(
            lambda: ledger._db.execute("SELECT body FROM records WHERE seq = 3").fetchone()[0]
        )
    )
    body["granted"] = ["facebook_pixel", "google_ads", "matomo"]
    tamper(
        ledger.path,
        "UPDATE records SET body = ? WHERE seq = 3",
        json.dumps(body, sort_keys=True, separators=(",", ":")),
    )
    report = await ledger.verify()
    await ledger.close()
    assert not report.ok
    assert any("seq 3" in p and "altered" in p for p in report.problems)


async def test_verify_detects_a_deleted_record(tmp_path: Path) -> None:
    ledger = SQLiteStore(tmp_path / "l.db")
    await fill(ledger, 5)
    tamper(ledger.path, "DELETE FROM records WHERE seq = 2")
    report = await ledger.verify()
    await ledger.close()
    assert not report.ok
    assert any("seq 3" in p and "missing" in p for p in report.problems)


async def test_verify_detects_a_deleted_last_record_only_by_count(tmp_path: Path) -> None:
    """Cutting the tail leaves a valid prefix: the head hash changes, which receipts expose."""
    ledger = SQLiteStore(tmp_path / "l.db")
    records = await fill(ledger, 3)
    tamper(ledger.path, "DELETE FROM records WHERE seq = 3")
    report = await ledger.verify()
    await ledger.close()
    assert report.head_hash != records[-1].hash


async def test_verify_detects_reordered_records(tmp_path: Path) -> None:
    ledger = SQLiteStore(tmp_path / "l.db")
    await fill(ledger, 5)
    rows = await ledger._run(
        lambda: ledger._db.execute(
            "SELECT seq, body, hash, record_id FROM records WHERE seq IN (2, 4) ORDER BY seq"
        ).fetchall()
    )
    (_, body2, hash2, id2), (_, body4, hash4, id4) = rows
    tamper(ledger.path, "UPDATE records SET record_id = 'tmp-' || seq WHERE seq IN (2, 4)")
    tamper(
        ledger.path,
        "UPDATE records SET body = ?, hash = ?, record_id = ? WHERE seq = 2",
        body4,
        hash4,
        id4,
    )
    tamper(
        ledger.path,
        "UPDATE records SET body = ?, hash = ?, record_id = ? WHERE seq = 4",
        body2,
        hash2,
        id2,
    )
    report = await ledger.verify()
    await ledger.close()
    assert not report.ok
    assert any("out of order" in p for p in report.problems)
    assert any("does not link" in p for p in report.problems)


def test_verify_chain_on_records_in_memory() -> None:
    a = ConsentRecord.seal(draft(0), seq=1, prev_hash="0" * 64)
    b = ConsentRecord.seal(draft(1), seq=2, prev_hash=a.hash)
    assert verify_chain([a, b]).ok
    assert not verify_chain([b, a]).ok
    assert not verify_chain([b]).ok
    assert verify_chain([b], anchor=a.hash, first_seq=2).ok, "a purge keeps an anchor"


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        ConsentRecord.seal(draft(time=datetime(2026, 1, 1)), seq=1, prev_hash="0" * 64)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root:secretpw@db/consent", "scheme 'mysql' is not supported"),
        ("postgres://user:secretpw@db/x", "scheme 'postgres' is not supported"),
        ("sqlite:///", "names no file"),
    ],
)
def test_unsupported_store_urls_are_refused_without_echoing_credentials(
    url: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        open_store(url)
    assert "secretpw" not in str(caught.value)


def test_missing_ledger_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        SQLiteStore(tmp_path / "nope" / "ledger.db")
