"""Cost of ConsentMiddleware on the request path and of a durable decision append.

Baselines run in the same process and run: the bare app without middleware, and a plain
SQLite insert with the same pragmas. Results are ratios against them plus absolute times.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.types import Receive, Scope, Send

from consentgate.config import Settings, preset_ids
from consentgate.consent import RecordDraft, new_consent_id
from consentgate.consent.sqlite import SQLiteStore
from consentgate.middleware import ConsentMiddleware

REQUESTS = 20_000
APPENDS = 300


async def bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def scope(cookie: str | None) -> dict[str, Any]:
    headers = [(b"host", b"example.de"), (b"user-agent", b"bench")]
    if cookie:
        headers.append((b"cookie", f"_ga=x; consentgate={cookie}; other=1".encode()))
    return {"type": "http", "method": "GET", "path": "/strom", "headers": headers}


async def time_calls(app: Callable[..., Awaitable[None]], request: dict[str, Any]) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    start = time.perf_counter()
    for _ in range(REQUESTS):
        await app(dict(request), receive, send)
    return (time.perf_counter() - start) / REQUESTS


def draft() -> RecordDraft:
    return RecordDraft(
        consent_id=new_consent_id(),
        time=datetime.now(UTC),
        action="custom",
        granted=("matomo",),
        refused=("facebook_pixel",),
        revision=1,
        fingerprint="f" * 64,
        language="de",
        page_url="https://example.de/",
        ip="203.0.113.0",
        browser="Firefox",
        os="Windows",
    )


async def append_rate(folder: Path) -> tuple[float, float]:
    raw = sqlite3.connect(folder / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=FULL")
    raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    start = time.perf_counter()
    for _ in range(APPENDS):
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("INSERT INTO t (body) VALUES (?)", ("x" * 400,))
        raw.execute("COMMIT")
    raw_rate = APPENDS / (time.perf_counter() - start)
    raw.close()
    store = SQLiteStore(folder / "ledger.db")
    start = time.perf_counter()
    for _ in range(APPENDS):
        await store.append(draft())
    ledger_rate = APPENDS / (time.perf_counter() - start)
    await store.close()
    return raw_rate, ledger_rate


async def run() -> None:
    with tempfile.TemporaryDirectory() as folder:
        services = {
            i: ({"url": "https://s.example.de/"} if i == "matomo" else {}) for i in preset_ids()
        }
        settings = Settings.from_mapping(
            {
                "secret_keys": ["b" * 40],
                "store_url": f"sqlite:///{folder}/mw.db",
                "services": services,
            }
        )
        middleware = ConsentMiddleware(bare_app, settings=settings)
        cookie = middleware.codec.encode(new_consent_id(), ["matomo", "youtube"])
        await time_calls(bare_app, scope(None))  # warm up
        bare = await time_calls(bare_app, scope(None))
        no_cookie = await time_calls(middleware, scope(None))
        with_cookie = await time_calls(middleware, scope(cookie))
        start = time.perf_counter()
        for _ in range(2000):
            middleware.codec._verify_uncached(cookie)
        uncached = (time.perf_counter() - start) / 2000
        raw_rate, ledger_rate = await append_rate(Path(folder))
    rows = [
        ("bare app", bare, "µs/request", 1.0),
        ("+ ConsentMiddleware, no cookie", no_cookie, "µs/request", no_cookie / bare),
        ("+ ConsentMiddleware, consented", with_cookie, "µs/request", with_cookie / bare),
    ]
    print(f"request path ({REQUESTS} raw ASGI calls each)")
    for label, seconds, unit, ratio in rows:
        print(f"  {label:<32}{seconds * 1e6:8.2f} {unit}  {ratio:.2f}x")
    print(f"  {'cookie verification, cached':<32}{(with_cookie - no_cookie) * 1e6:8.2f} µs/request")
    print(f"  {'cookie verification, first seen':<32}{uncached * 1e6:8.2f} µs/cookie")
    print(f"durable appends ({APPENDS}, WAL + synchronous=FULL)")
    print(f"  {'plain SQLite insert':<32}{raw_rate:8.0f} commits/s  1.00x")
    ratio = ledger_rate / raw_rate
    print(f"  {'SQLiteStore.append (chained)':<32}{ledger_rate:8.0f} records/s  {ratio:.2f}x")


def main() -> None:
    """Run the request-path and append benchmarks."""
    asyncio.run(run())
