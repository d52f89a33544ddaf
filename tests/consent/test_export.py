"""consent.export: the CSV and JSON Lines encodings, streaming, filters and statistics."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.consent import export
from consentgate.consent.export import (
    EXPORT_FIELDS,
    FORMATS,
    CSVFormat,
    JSONLFormat,
    compute_stats,
    export_text,
    matches,
)
from consentgate.consent.record import (
    GENESIS_HASH,
    ConsentRecord,
    RecordDraft,
    StoredRecord,
    verify_chain,
)
from consentgate.consent.sqlite import SQLiteStore
from consentgate.consent.store import Store

T0 = datetime(2026, 10, 30, 10, 0, tzinfo=UTC)
SERVICES = ("facebook_pixel", "matomo", "youtube")


def draft(n: int = 0, **changes: Any) -> RecordDraft:
    values: dict[str, Any] = {
        "consent_id": f"{n:022d}",
        "time": T0 + timedelta(hours=n),
        "action": "custom",
        "granted": ("matomo",),
        "refused": ("facebook_pixel", "youtube"),
        "revision": 1,
        "fingerprint": "f" * 64,
        "language": "de",
        "page_url": "https://www.example.de/über-uns",
        "ip": "203.0.113.0",
        "browser": "Firefox 133",
        "os": "Windows",
    }
    values.update(changes)
    return RecordDraft(**values)


async def text(store: Store, **options: Any) -> str:
    return "".join([chunk async for chunk in export_text(store, **options)])


async def jsonl(store: Store, **options: Any) -> list[dict[str, Any]]:
    lines = (await text(store, fmt="jsonl", **options)).splitlines()
    return [json.loads(line) for line in lines]


# --- encodings ----------------------------------------------------------------------------

# Text a visitor controls: quotes, backslashes, control characters, umlauts, emoji, and
# fragments that look like the keys the JSON Lines splice looks for.
visitor_text = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(['"', "\\", ",", ":", "ü", "€", "\n", "\x85", "\u2028", "\u2029"]),
    ),
    max_size=30,
) | st.sampled_from([',"ip":"x', '","os":"', '\\",\\"salt\\":', "=1+1", ',"seq":9,'])


@settings(max_examples=300, deadline=None)
@given(
    page_url=visitor_text,
    browser=visitor_text,
    os=visitor_text,
    ip=visitor_text,
    language=visitor_text,
    consent_id=visitor_text,
    record_id=visitor_text,
    salt=visitor_text,
    granted=st.lists(visitor_text, max_size=3),
    redacted=st.booleans(),
)
def test_jsonl_lines_are_the_canonical_encoding_of_the_values(
    page_url: str,
    browser: str,
    os: str,
    ip: str,
    language: str,
    consent_id: str,
    record_id: str,
    salt: str,
    granted: list[str],
    redacted: bool,
) -> None:
    record = ConsentRecord.seal(
        draft(
            page_url=page_url,
            browser=browser,
            os=os,
            ip=ip,
            language=language,
            consent_id=consent_id,
            record_id=record_id,
            salt=salt,
            granted=tuple(granted),
        ),
        seq=7,
        prev_hash=GENESIS_HASH,
        chain=3,
    )
    if redacted:
        record = record.redact(T0)
    stored = record.stored()
    values = stored.values()
    expected = json.dumps(values, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    for char in "\x85\u2028\u2029":  # escaped: whatever splits lines reads one record
        expected = expected.replace(char, f"\\u{ord(char):04x}")
    assert len((expected + "\n").splitlines()) == 1
    # The splice is taken (not the fallback) and gives exactly the canonical encoding.
    assert SpliceOnly().rows([stored]) == expected + "\n"
    assert JSONLFormat().row(values) == expected + "\n"
    assert sorted(json.loads(expected)) == sorted(EXPORT_FIELDS)
    # CSV: the shortcut past the csv module (where it applies) writes what the module does.
    assert CSVFormat().rows([stored]) == CSVFormat().row(values)


class SpliceOnly(JSONLFormat):
    """Fails where ``rows`` would fall back to decoding and re-encoding."""

    def row(self, values: dict[str, Any]) -> str:
        raise AssertionError("re-encoded")


def test_jsonl_of_an_unfamiliar_layout_is_re_encoded() -> None:
    stored = ConsentRecord.seal(draft(), seq=1, prev_hash=GENESIS_HASH).stored()
    body = json.loads(stored.body)
    body.update(format=2, referrer="https://www.example.de/")
    odd = stored._replace(body=json.dumps(body, sort_keys=True, separators=(",", ":")))
    with pytest.raises(AssertionError, match="re-encoded"):
        SpliceOnly().rows([odd])
    line = JSONLFormat().rows([stored, odd])
    assert [json.loads(x) for x in line.splitlines()] == [stored.values(), odd.values()]
    assert list(json.loads(line.splitlines()[1])) == sorted(odd.values()), "keys sorted"
    # A hash column tampered into something that needs escaping still gives valid JSON.
    bad = stored._replace(hash='"},{"evil":1')
    assert json.loads(JSONLFormat().rows([bad]))["hash"] == '"},{"evil":1'


def test_csv_is_what_german_excel_reads() -> None:
    record = ConsentRecord.seal(
        draft(
            page_url="https://www.example.de/über-uns;jsessionid=1",
            browser='=HYPERLINK("https://evil.example/","Klick")',
            os="-2+3",
            language="@SUM(A1)",
            granted=("matomo", "youtube"),
            refused=("facebook_pixel",),
        ),
        seq=1,
        prev_hash=GENESIS_HASH,
    ).stored()
    fmt = CSVFormat()
    data = (fmt.start() + fmt.rows([record])).encode()
    assert data.startswith(b"\xef\xbb\xbf"), "UTF-8 byte-order mark"
    text = data.decode("utf-8-sig")
    assert text.count("\r\n") == 2 and "\n" not in text.replace("\r\n", "")
    header, row = csv.reader(io.StringIO(text, newline=""), delimiter=";")
    assert header == list(EXPORT_FIELDS)
    cells = dict(zip(header, row, strict=True))
    assert cells["page_url"] == "https://www.example.de/über-uns;jsessionid=1"
    assert cells["browser"] == '\'=HYPERLINK("https://evil.example/","Klick")'
    assert cells["os"] == "'-2+3"
    assert cells["language"] == "'@SUM(A1)"
    assert cells["granted"] == "matomo youtube"
    assert cells["refused"] == "facebook_pixel"
    assert cells["redacted_at"] == ""
    assert cells["seq"] == "1" and cells["chain"] == "0" and cells["format"] == "1"
    assert cells["hash"] == record.hash
    assert fmt.row(record.values()) == fmt.rows([record])


class CSVShortcutOnly(CSVFormat):
    """Fails where ``rows`` would go through the csv module."""

    def row(self, values: dict[str, Any]) -> str:
        raise AssertionError("csv module")


def test_csv_of_ordinary_records_takes_the_shortcut() -> None:
    records = [
        ConsentRecord.seal(draft(n, page_url=url), seq=n, prev_hash=GENESIS_HASH).stored()
        for n, url in enumerate(["https://www.example.de/über-uns", "https://x.de/a,b c"])
    ]
    assert CSVShortcutOnly().rows(records) == "".join(
        CSVFormat._write([export._cells(r.values())]) for r in records
    )
    # A ";" in a cell, an erased record, an escaped character: the csv module quotes.
    odd = [
        ConsentRecord.seal(draft(page_url="https://x.de/a;b"), seq=1, prev_hash=GENESIS_HASH),
        ConsentRecord.seal(draft(), seq=1, prev_hash=GENESIS_HASH).redact(T0),
        ConsentRecord.seal(draft(browser='Firefox "Nightly"'), seq=1, prev_hash=GENESIS_HASH),
    ]
    for record in odd:
        with pytest.raises(AssertionError, match="csv module"):
            CSVShortcutOnly().rows([record.stored()])
    line = CSVFormat().rows([odd[0].stored(), odd[2].stored()])
    rows = list(csv.reader(io.StringIO(line, newline=""), delimiter=";"))
    assert rows[0][EXPORT_FIELDS.index("page_url")] == "https://x.de/a;b"
    assert rows[1][EXPORT_FIELDS.index("browser")] == 'Firefox "Nightly"'


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_guards_every_formula_start(start: str) -> None:
    record = ConsentRecord.seal(
        draft(browser=start + "cmd|' /C calc'!A0"), seq=1, prev_hash=GENESIS_HASH
    )
    line = CSVFormat().rows([record.stored()])
    (row,) = csv.reader(io.StringIO(line, newline=""), delimiter=";")
    assert row[EXPORT_FIELDS.index("browser")] == "'" + start + "cmd|' /C calc'!A0"


def test_formats_name_their_media_type() -> None:
    assert FORMATS["csv"].media_type.startswith("text/csv")
    assert FORMATS["csv"].suffix == ".csv" and FORMATS["jsonl"].suffix == ".jsonl"
    assert FORMATS["jsonl"].start() == ""


def test_matches() -> None:
    values = {"consent_id": "a", "granted": ["matomo"], "refused": ["youtube"]}
    assert matches(values, consent_id=None, service=None)
    assert matches(values, consent_id="a", service="youtube")
    assert matches(values, consent_id=None, service="matomo")
    assert not matches(values, consent_id="b", service=None)
    assert not matches(values, consent_id=None, service="facebook_pixel")


# --- export_text against a real ledger -----------------------------------------------------


async def test_jsonl_export_round_trips_into_records_that_verify(store: SQLiteStore) -> None:
    await store.append_many([draft(n) for n in range(5)])
    await store.erase(f"{2:022d}", at=T0 + timedelta(days=1))
    rows = await jsonl(store)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[2]["ip"] == "" and rows[2]["redacted_at"] == "2026-10-31T10:00:00.000000Z"
    assert rows[1]["page_url"] == "https://www.example.de/über-uns"
    records = [ConsentRecord.from_json(row) for row in rows]
    assert all(r.computed_hash() == r.hash for r in records)
    assert verify_chain(records).ok
    stored = [r.stored() for r in records]
    assert stored == [s async for s in store.stored()]


async def test_filters(store: SQLiteStore) -> None:
    await store.append_many(
        [
            draft(0, granted=("matomo",), refused=()),
            draft(1, granted=(), refused=("youtube",)),
            draft(2, consent_id="x" * 22, granted=("youtube",), refused=("matomo",)),
            draft(3, consent_id="x" * 22, granted=(), refused=("matomo",)),
            draft(4, granted=("youtube",), refused=()),
        ]
    )

    async def seqs(**options: Any) -> list[int]:
        return [row["seq"] for row in await jsonl(store, **options)]

    assert await seqs() == [1, 2, 3, 4, 5]
    assert await seqs(service="youtube") == [2, 3, 5]
    assert await seqs(service="matomo") == [1, 3, 4]
    assert await seqs(service="google_maps") == []
    assert await seqs(consent_id="x" * 22) == [3, 4]
    assert await seqs(consent_id="x" * 22, service="youtube") == [3]
    assert await seqs(consent_id="unknown") == []
    assert await seqs(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=3)) == [2, 3]
    assert await seqs(consent_id="x" * 22, since=T0 + timedelta(hours=3)) == [4]
    assert await seqs(consent_id="x" * 22, until=T0 + timedelta(hours=3)) == [3]
    csv_text = await text(store, fmt="csv", service="youtube")
    assert len(csv_text.splitlines()) == 1 + 3


async def test_export_streams_in_chunks(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("consentgate.consent.sqlite.BATCH", 10)
    monkeypatch.setattr(export, "CHUNK_ROWS", 4)
    await store.append_many([draft(n) for n in range(30)])
    read = 0
    inner = store.stored

    async def counting(**window: Any) -> AsyncIterator[StoredRecord]:
        nonlocal read
        async for stored in inner(**window):
            read += 1
            yield stored

    monkeypatch.setattr(store, "stored", counting)
    progress: list[int] = []
    chunks = export_text(store, fmt="jsonl", progress=progress.append)
    assert await anext(chunks) == ""
    first = await anext(chunks)
    assert first.count("\n") == 4
    assert read <= 10, "the first chunk comes before the ledger is read through"
    rest = [chunk async for chunk in chunks]
    assert [c.count("\n") for c in rest] == [4] * 6 + [2]
    assert progress == [4, 8, 12, 16, 20, 24, 28, 30]


async def test_unknown_format_is_a_value_error(store: SQLiteStore) -> None:
    with pytest.raises(ValueError, match="xlsx"):
        await text(store, fmt="xlsx")


# --- statistics ---------------------------------------------------------------------------

# Two months, weeks crossing the month: (hours after T0 = Fri 2026-10-30 10:00, consent id,
# action, granted, refused).
DECISIONS = [
    (0, "a", "accept-all", ("facebook_pixel", "matomo", "youtube"), ()),  # 10-30, W44
    (26, "b", "reject-all", (), ("facebook_pixel", "matomo", "youtube")),  # 10-31, W44
    (47, "c", "custom", ("matomo",), ("facebook_pixel",)),  # 11-01 (Sun), W44
    (70, "a", "withdraw", ("youtube",), ("facebook_pixel", "matomo")),  # 11-02 (Mon), W45
    (82, "d", "custom", ("legacy_chat", "matomo", "youtube"), ("facebook_pixel",)),  # 11-02
]
CATEGORIES = {"matomo": "statistics", "youtube": "external_media", "facebook_pixel": "marketing"}


@pytest.fixture
async def decided(store: SQLiteStore) -> SQLiteStore:
    await store.append_many(
        [
            draft(0, consent_id=cid * 22, time=T0 + timedelta(hours=h), action=action,
                  granted=granted, refused=refused)
            for h, cid, action, granted, refused in DECISIONS
        ]
    )  # fmt: skip
    return store


def rates(part: dict[str, Any]) -> dict[str, float | None]:
    return {name: counts["opt_in_rate"] for name, counts in part.items()}


async def test_stats_totals_and_overall_rates(decided: SQLiteStore) -> None:
    stats = await compute_stats(decided, categories=CATEGORIES)
    assert stats["totals"] == {
        "records": 5,
        "consent_ids": 4,
        "actions": {"accept-all": 1, "custom": 2, "reject-all": 1, "withdraw": 1},
    }
    assert stats["services"] == {
        "facebook_pixel": {"category": "marketing", "granted": 1, "offered": 5,
                           "opt_in_rate": 0.2},
        "legacy_chat": {"category": "unknown", "granted": 1, "offered": 1, "opt_in_rate": 1.0},
        "matomo": {"category": "statistics", "granted": 3, "offered": 5, "opt_in_rate": 0.6},
        "youtube": {"category": "external_media", "granted": 3, "offered": 4,
                    "opt_in_rate": 0.75},
    }  # fmt: skip
    assert rates(stats["categories"]) == {
        "external_media": 0.75,
        "marketing": 0.2,
        "statistics": 0.6,
        "unknown": 1.0,
    }
    assert stats["by"] is None and stats["periods"] == {}
    json.dumps(stats)  # JSON-ready


async def test_stats_by_month(decided: SQLiteStore) -> None:
    stats = await compute_stats(decided, by="month", categories=CATEGORIES)
    october, november = stats["periods"]["2026-10"], stats["periods"]["2026-11"]
    assert list(stats["periods"]) == ["2026-10", "2026-11"]
    assert october["decisions"] == 2 and november["decisions"] == 3
    assert october["actions"] == {"accept-all": 1, "reject-all": 1}
    assert rates(october["services"]) == {
        "facebook_pixel": 0.5, "legacy_chat": None, "matomo": 0.5, "youtube": 0.5,
    }  # fmt: skip
    assert rates(november["services"]) == {
        "facebook_pixel": 0.0, "legacy_chat": 1.0, "matomo": 0.6667, "youtube": 1.0,
    }  # fmt: skip
    assert november["services"]["matomo"] == {"granted": 2, "offered": 3, "opt_in_rate": 0.6667}
    assert rates(october["categories"]) == {
        "external_media": 0.5, "marketing": 0.5, "statistics": 0.5, "unknown": None,
    }  # fmt: skip


async def test_stats_by_iso_week_and_day(decided: SQLiteStore) -> None:
    weeks = (await compute_stats(decided, by="week"))["periods"]
    assert {k: v["decisions"] for k, v in weeks.items()} == {"2026-W44": 3, "2026-W45": 2}
    assert rates(weeks["2026-W44"]["services"]) == {
        "facebook_pixel": 0.3333, "legacy_chat": None, "matomo": 0.6667, "youtube": 0.5,
    }  # fmt: skip
    # Without categories every service is "unknown": 4 of the 7 offers granted.
    assert weeks["2026-W45"]["categories"] == {
        "unknown": {"granted": 4, "offered": 7, "opt_in_rate": 0.5714}
    }
    days = (await compute_stats(decided, by="day"))["periods"]
    assert {k: v["decisions"] for k, v in days.items()} == {
        "2026-10-30": 1, "2026-10-31": 1, "2026-11-01": 1, "2026-11-02": 2,
    }  # fmt: skip
    assert days["2026-11-01"]["services"]["youtube"]["opt_in_rate"] is None


async def test_stats_window(decided: SQLiteStore) -> None:
    stats = await compute_stats(
        decided,
        since=datetime(2026, 11, 1, tzinfo=UTC),
        until=datetime(2026, 11, 2, 20, tzinfo=UTC),
    )
    assert stats["totals"]["records"] == 2 and stats["totals"]["consent_ids"] == 2
    assert stats["since"] == "2026-11-01T00:00:00.000000Z"
    assert sorted(stats["services"]) == ["facebook_pixel", "matomo", "youtube"]
    with pytest.raises(ValueError, match="fortnight"):
        await compute_stats(decided, by="fortnight")  # type: ignore[arg-type]


async def test_stats_never_decode_personal_fields(decided: SQLiteStore) -> None:
    db = sqlite3.connect(decided.path)
    with db:
        db.execute("UPDATE records SET personal = 'not JSON'")
    db.close()
    stats = await compute_stats(decided, by="day")
    assert stats["totals"]["records"] == 5
    with pytest.raises(ValueError, match="line 1 column 1"):
        await text(decided, fmt="csv")


async def test_erased_records_export_blank(tmp_path: Path) -> None:
    ledger = SQLiteStore(tmp_path / "ledger.db")
    record = await ledger.append(draft(1))
    await ledger.erase(record.consent_id, at=T0)
    (row,) = await jsonl(ledger)
    assert {row[f] for f in ("page_url", "ip", "browser", "os", "salt")} == {""}
    assert row["personal_digest"] == record.personal_digest
    assert ConsentRecord.from_json(row) == record.redact(T0), "the erased record, digest kept"
    await ledger.close()


class ListStore:
    """Just enough of a store for ``compute_stats``: ``stored`` over a list."""

    def __init__(self, records: list[StoredRecord]) -> None:
        self.records = records

    async def stored(self, **window: Any) -> AsyncIterator[StoredRecord]:
        for record in self.records:
            yield record


service_id = st.sampled_from(["matomo", "youtube"]) | visitor_text


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["accept-all", "reject-all", "custom", "withdraw"]),
            visitor_text,
            st.lists(service_id, max_size=3, unique=True),
            st.lists(service_id, max_size=3, unique=True),
        ),
        max_size=8,
    )
)
async def test_stats_count_what_the_bodies_say(
    decisions: list[tuple[str, str, list[str], list[str]]],
) -> None:
    records = [
        ConsentRecord.seal(
            draft(n, action=action, consent_id=cid, granted=tuple(g), refused=tuple(r)),
            seq=n + 1,
            prev_hash=GENESIS_HASH,
        ).stored()
        for n, (action, cid, g, r) in enumerate(decisions)
    ]
    stats = await compute_stats(ListStore(records), by="day")  # type: ignore[arg-type]
    granted: dict[str, int] = {}
    offered: dict[str, int] = {}
    for _, _, g, r in decisions:
        for service in g:
            granted[service] = granted.get(service, 0) + 1
        for service in (*g, *r):
            offered[service] = offered.get(service, 0) + 1
    assert {s: (v["granted"], v["offered"]) for s, v in stats["services"].items()} == {
        s: (granted.get(s, 0), offered[s]) for s in offered
    }
    assert stats["totals"]["consent_ids"] == len({cid for _, cid, _, _ in decisions})
    assert sum(p["decisions"] for p in stats["periods"].values()) == len(decisions)


async def test_stats_of_ordinary_records_decode_no_json(
    decided: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [stored async for stored in decided.stored()]

    def refuse(text: str) -> Any:
        raise AssertionError(f"decoded {text[:20]}")

    monkeypatch.setattr(json, "loads", refuse)
    stats = await compute_stats(ListStore(records), categories=CATEGORIES)  # type: ignore[arg-type]
    assert stats["services"]["matomo"]["opt_in_rate"] == 0.6


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(service_id, max_size=3), st.lists(service_id, max_size=3)),
        max_size=6,
    ),
    service_id,
)
async def test_service_filter_is_matches(
    offers: list[tuple[list[str], list[str]]], service: str
) -> None:
    records = [
        ConsentRecord.seal(
            draft(n, granted=tuple(g), refused=tuple(r)), seq=n + 1, prev_hash=GENESIS_HASH
        ).stored()
        for n, (g, r) in enumerate(offers)
    ]
    store: Any = ListStore(records)
    rows = await jsonl(store, service=service)
    expected = [
        r.values() for r in records if matches(r.values(), consent_id=None, service=service)
    ]
    assert rows == expected


async def test_a_consumer_that_stops_early_ends_the_store_iteration() -> None:
    closed = False

    async def endless() -> AsyncIterator[StoredRecord]:
        nonlocal closed
        stored = ConsentRecord.seal(draft(), seq=1, prev_hash=GENESIS_HASH).stored()
        try:
            while True:
                yield stored
        finally:
            closed = True

    class Endless:
        def stored(self, **window: Any) -> AsyncIterator[StoredRecord]:
            return endless()

    chunks = export_text(Endless(), fmt="csv")  # type: ignore[arg-type]
    await anext(chunks)
    assert (await anext(chunks)).count("\r\n") == export.CHUNK_ROWS
    await chunks.aclose()  # type: ignore[attr-defined]
    assert closed
