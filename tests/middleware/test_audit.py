"""The tracker audit's counters: bounded, flushed to the store, kept when the store fails."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from starlette.responses import HTMLResponse
from starlette.types import Receive, Scope, Send

from consentgate.config import Settings
from consentgate.consent.sqlite import SQLiteStore
from consentgate.consent.store import AuditEntry, AuditKey, StoreUnavailable
from consentgate.middleware import ConsentMiddleware
from consentgate.middleware.audit import TrackerAudit, covered, describe, read_findings
from tests.example_site.test_example_site import lifespan

AT = datetime(2026, 11, 21, 12, tzinfo=UTC)


class DownStore:
    """A store whose audit write fails, as when Redis is unreachable."""

    async def add_audit(self, counts: Mapping[AuditKey, int], *, at: datetime) -> None:
        raise StoreUnavailable("down")


async def test_flush_adds_counts_and_empties_the_queue(store: SQLiteStore) -> None:
    audit = TrackerAudit()
    audit.record("/kontakt", hosts={"cdn.example.net"}, cookies=["chat"])
    audit.record("/kontakt", hosts={"cdn.example.net"})
    assert await audit.flush(store, at=AT) == 2
    assert audit.pending() == {}
    assert await audit.flush(store, at=AT) == 0
    entries = await store.audit()
    assert [(e.kind, e.name, e.path, e.count) for e in entries] == [
        ("host", "cdn.example.net", "/kontakt", 2),
        ("cookie", "chat", "/kontakt", 1),
    ]


async def test_counts_wait_for_the_next_flush_when_the_store_fails(store: SQLiteStore) -> None:
    audit = TrackerAudit()
    audit.record("/", hosts={"a.example"})
    with pytest.raises(StoreUnavailable):
        await audit.flush(DownStore(), at=AT)  # type: ignore[arg-type]
    audit.record("/", hosts={"a.example"})
    assert audit.pending() == {("host", "a.example", "/"): 2}
    await audit.flush(store, at=AT)
    assert [e.count for e in await store.audit()] == [2]


def test_pending_findings_are_bounded_and_drops_counted() -> None:
    audit = TrackerAudit(max_pending=2)
    audit.record("/a", hosts={"one.example", "two.example"})
    audit.record("/b", hosts={"three.example"})
    audit.record("/a", hosts={"one.example"})  # known ones keep counting
    assert len(audit.pending()) == 2
    assert audit.dropped == 1
    assert sum(audit.pending().values()) == 3


def test_long_paths_and_names_are_cut() -> None:
    audit = TrackerAudit()
    audit.record("/" + "p" * 500, cookies=["c" * 500])
    ((kind, name, path),) = audit.pending()
    assert (kind, len(name), len(path)) == ("cookie", 200, 200)


def test_covered_follows_the_settings(settings: Settings) -> None:
    def entry(kind: str, name: str) -> AuditEntry:
        return AuditEntry(kind, name, "/", 1, "", "")

    assert covered(entry("host", "www.googletagmanager.com"), settings)
    assert covered(entry("host", "code.etracker.com"), settings)
    assert not covered(entry("host", "cdn.example.net"), settings)
    assert covered(entry("cookie", "_pk_id.1.abcd"), settings)  # Matomo's, by pattern
    assert covered(entry("cookie", settings.cookie.name), settings)
    assert not covered(entry("cookie", "chat_visitor"), settings)


async def test_read_findings_drops_covered_ones(store: SQLiteStore, settings: Settings) -> None:
    await store.add_audit(
        {("host", "connect.facebook.net", "/"): 3, ("host", "cdn.example.net", "/k"): 1}, at=AT
    )
    assert [e.name for e in await read_findings(store)] == [
        "connect.facebook.net",
        "cdn.example.net",
    ]
    assert [e.name for e in await read_findings(store, settings)] == ["cdn.example.net"]


@pytest.mark.parametrize(
    ("language", "kind", "expected"),
    [
        ("de", "host", "unbekannter Dienst: cdn.example.net auf /kontakt (3× gesehen, zuletzt"),
        ("en", "host", "unknown service: cdn.example.net on /kontakt (seen 3×, last"),
        ("de", "cookie", "unbekanntes Cookie: cdn.example.net auf /kontakt"),
    ],
)
def test_describe(language: str, kind: str, expected: str) -> None:
    entry = AuditEntry(kind, "cdn.example.net", "/kontakt", 3, "", "2026-11-21T12:00:00Z")
    assert describe(entry, language).startswith(expected)  # type: ignore[arg-type]


async def test_lifespan_shutdown_flushes_the_audit(settings: Settings, tmp_path: Path) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        html = '<html><body><img src="https://px.example.org/p.gif"></body></html>'
        await HTMLResponse(html)(scope, receive, send)

    ledger = SQLiteStore(tmp_path / "l.db")
    middleware = ConsentMiddleware(app, settings=settings, store=ledger)
    async with lifespan(middleware):
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/seite")
        assert await ledger.audit() == []  # counted in memory until a flush
    assert [(e.name, e.path) for e in await ledger.audit()] == [("px.example.org", "/seite")]
    await ledger.close()


class SlowStore:
    """A store whose audit write takes a while (a write already sent, not yet answered)."""

    def __init__(self) -> None:
        self.added: list[dict[AuditKey, int]] = []

    async def add_audit(self, counts: Mapping[AuditKey, int], *, at: datetime) -> None:
        await asyncio.sleep(0.2)
        self.added.append(dict(counts))


async def test_a_timed_out_flush_is_not_counted_twice() -> None:
    audit = TrackerAudit()
    audit.record("/", hosts={"a.example"})
    store = SlowStore()
    flush = asyncio.ensure_future(audit.flush(store, at=AT))  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(flush), 0.05)
    await flush  # the write completes after all
    assert audit.pending() == {}  # not put back for a second delivery
    assert await audit.flush(store, at=AT) == 0  # type: ignore[arg-type]
    assert store.added == [{("host", "a.example", "/"): 1}]


async def test_error_pages_count_under_one_path(settings: Settings, tmp_path: Path) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        html = '<html><body><script src="https://cdn.example.net/x.js"></script></body></html>'
        await HTMLResponse(html, status_code=404)(scope, receive, send)

    ledger = SQLiteStore(tmp_path / "l.db")
    middleware = ConsentMiddleware(app, settings=settings, store=ledger)
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for n in range(5):
            await client.get(f"/made-up-{n}")
    assert middleware.audit.pending() == {("host", "cdn.example.net", "*"): 5}
    await middleware.flush_audit()
    (entry,) = await ledger.audit()
    assert describe(entry).startswith("unbekannter Dienst: cdn.example.net auf Fehlerseiten")
    await middleware.ledger.stop()
    await ledger.close()
